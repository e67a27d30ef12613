//! Signed reply addresses: every mail to a customer carries
//! `Reply-To: support+<token>@domain`, where the token names the ticket and
//! carries an HMAC-SHA256 under the installation secret. A reply that only
//! reaches that address threads into the ticket, and nobody can forge a
//! token for a ticket they were never sent.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in the token: 80 bits, 20 hex characters.
const MAC_BYTES: usize = 10;

fn mac(secret: &[u8], reference: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(b"helpdesk-reply-token-v1:");
    mac.update(reference.to_ascii_uppercase().as_bytes());
    mac
}

/// The token for a ticket reference such as `SUP-1042`: `sup-1042.<mac>`.
/// Lowercase only, because some mail systems lowercase local parts.
pub fn make(secret: &[u8], reference: &str) -> String {
    let tag = mac(secret, reference).finalize().into_bytes();
    format!(
        "{}.{}",
        reference.to_ascii_lowercase(),
        hex::encode(&tag[..MAC_BYTES])
    )
}

/// The reply address for `support@example.com` and a token.
pub fn address(department_address: &str, token: &str) -> String {
    match department_address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => format!("{department_address}+{token}"),
    }
}

/// The ticket reference named by a token, when its MAC verifies.
pub fn verify(secret: &[u8], token: &str) -> Option<String> {
    let token = token.to_ascii_lowercase();
    let (reference, tag) = token.rsplit_once('.')?;
    let tag = hex::decode(tag).ok()?;
    if tag.len() != MAC_BYTES || reference.is_empty() {
        return None;
    }
    mac(secret, reference)
        .verify_truncated_left(&tag)
        .ok()
        .map(|()| reference.to_ascii_uppercase())
}

/// The token part of `local+token@domain`, when the address is a plus
/// address of one of ours (`ours` are bare department addresses).
pub fn token_in_address<'a>(address: &'a str, ours: &[&str]) -> Option<&'a str> {
    let (local, domain) = address.rsplit_once('@')?;
    let (base, token) = local.split_once('+')?;
    ours.iter()
        .any(|o| {
            o.rsplit_once('@').is_some_and(|(ol, od)| {
                ol.eq_ignore_ascii_case(base) && od.eq_ignore_ascii_case(domain)
            })
        })
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_survives_lowercasing() {
        let t = make(b"secret", "SUP-1042");
        assert!(t.starts_with("sup-1042."));
        assert_eq!(verify(b"secret", &t).as_deref(), Some("SUP-1042"));
        assert_eq!(
            verify(b"secret", &t.to_uppercase()).as_deref(),
            Some("SUP-1042")
        );
    }

    #[test]
    fn forged_or_foreign_tokens_are_rejected() {
        let t = make(b"secret", "SUP-1042");
        assert_eq!(verify(b"other-secret", &t), None);
        let forged = t.replace("sup-1042", "sup-1043");
        assert_eq!(verify(b"secret", &forged), None);
        assert_eq!(verify(b"secret", "sup-1042"), None);
        assert_eq!(verify(b"secret", "sup-1042.zz"), None);
        assert_eq!(verify(b"secret", ".00112233445566778899"), None);
    }

    #[test]
    fn finds_token_only_in_our_plus_addresses() {
        let ours = ["support@example.com"];
        assert_eq!(
            token_in_address("Support+abc.12@Example.com", &ours),
            Some("abc.12")
        );
        assert_eq!(token_in_address("support+abc@other.com", &ours), None);
        assert_eq!(token_in_address("support@example.com", &ours), None);
        assert_eq!(
            address("support@example.com", "sup-1.ab"),
            "support+sup-1.ab@example.com"
        );
    }
}
