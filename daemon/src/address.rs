//! Mail addresses as Roost stores and compares them.
//!
//! Domains are compared case-insensitively (RFC 5321 2.4). Local parts are
//! case-sensitive in theory, but no one runs a mailbox that way; like most
//! servers we fold them to lower case, so `Alice@` and `alice@` are one
//! account. Non-ASCII (SMTPUTF8, RFC 6531) addresses are kept as UTF-8 and
//! folded with Unicode lower-casing. IDNA (punycode) domains are not
//! converted: an `xn--` domain and its Unicode form are different domains.

use std::fmt;

/// Separator of sub-addresses: `alice+news@` delivers to `alice@`.
pub const SUBADDRESS_SEPARATOR: char = '+';

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an address needs the form local@domain")]
    Form,
    #[error("an address may be at most 254 characters")]
    TooLong,
    #[error("the domain is not a valid host name")]
    Domain,
}

impl Address {
    /// Parses and normalises `local@domain`.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        if s.len() > 254 {
            return Err(AddressError::TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::Form)?;
        if local.is_empty() || local.len() > 64 || local.chars().any(|c| c.is_control()) {
            return Err(AddressError::Form);
        }
        Ok(Address {
            local: local.to_lowercase(),
            domain: normalise_domain(domain)?,
        })
    }

    /// The address without a `+tag`, if it has one.
    pub fn without_subaddress(&self) -> Option<Address> {
        let (base, _tag) = self.local.split_once(SUBADDRESS_SEPARATOR)?;
        (!base.is_empty()).then(|| Address {
            local: base.to_owned(),
            domain: self.domain.clone(),
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Lower-cases a domain and checks it is a plausible host name (labels of
/// letters, digits, hyphens or non-ASCII, 1-63 long, no trailing dot).
pub fn normalise_domain(domain: &str) -> Result<String, AddressError> {
    let domain = domain.to_lowercase();
    let valid_label = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if domain.len() > 253 || !domain.split('.').all(valid_label) {
        return Err(AddressError::Domain);
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_keeps_utf8() {
        let a = Address::parse("Alice@Example.TEST").unwrap();
        assert_eq!(a.to_string(), "alice@example.test");
        let u = Address::parse("Jörg@Bücher.example").unwrap();
        assert_eq!(u.to_string(), "jörg@bücher.example");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "alice",
            "@example.test",
            "alice@",
            "a@b..c",
            "a@-x.test",
            "a\u{0}@x.test",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn strips_subaddress() {
        let a = Address::parse("alice+news@example.test").unwrap();
        assert_eq!(
            a.without_subaddress().unwrap().to_string(),
            "alice@example.test"
        );
        assert!(Address::parse("+x@example.test")
            .unwrap()
            .without_subaddress()
            .is_none());
        assert!(Address::parse("alice@example.test")
            .unwrap()
            .without_subaddress()
            .is_none());
    }
}
