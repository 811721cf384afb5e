//! SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) decoding.

use base64::{engine::general_purpose::STANDARD, Engine};

/// Credentials a client offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("malformed credentials")]
    Malformed,
}

pub fn decode_base64(text: &str) -> Result<Vec<u8>, SaslError> {
    STANDARD.decode(text.trim()).map_err(|_| SaslError::Base64)
}

/// PLAIN: `authzid NUL authcid NUL passwd`. An authzid other than empty or
/// the authcid itself (acting as another user) is refused.
pub fn parse_plain(text: &str) -> Result<Credentials, SaslError> {
    let raw = decode_base64(text)?;
    let raw = String::from_utf8(raw).map_err(|_| SaslError::Malformed)?;
    let mut parts = raw.split('\0');
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if user.is_empty() || (!authz.is_empty() && authz != user) {
        return Err(SaslError::Malformed);
    }
    Ok(Credentials {
        username: user.to_owned(),
        password: pass.to_owned(),
    })
}

/// One base64 line of the LOGIN exchange, as UTF-8 text.
pub fn parse_login_line(text: &str) -> Result<String, SaslError> {
    String::from_utf8(decode_base64(text)?).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let ok = STANDARD.encode("\0alice@example.test\0secret");
        assert_eq!(
            parse_plain(&ok).unwrap(),
            Credentials {
                username: "alice@example.test".into(),
                password: "secret".into()
            }
        );
        let other = STANDARD.encode("bob@x\0alice@x\0secret");
        assert_eq!(parse_plain(&other), Err(SaslError::Malformed));
        assert_eq!(parse_plain("!!!"), Err(SaslError::Base64));
        assert_eq!(
            parse_plain(&STANDARD.encode("nonul")),
            Err(SaslError::Malformed)
        );
    }
}
