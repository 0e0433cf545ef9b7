//! The site key: 256 random bits, hex in a file only its owner can read.
//!
//! Pseudonyms and date offsets are HMAC-SHA256 values under this key, so they
//! are stable across runs at one site and unlinkable across sites with
//! different keys. The key never leaves this module except as a fingerprint
//! ([`SiteKey::key_id`]).

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::DeidError;

type HmacSha256 = Hmac<Sha256>;

/// Hex digits of a pseudonym (128 bits).
pub const PSEUDONYM_HEX: usize = 32;

/// A loaded site key.
#[derive(Clone)]
pub struct SiteKey {
    mac: HmacSha256,
    id: String,
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SiteKey({})", self.id)
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// SHA-256 (hex) of a file's bytes, read in blocks (never whole in memory).
///
/// # Errors
///
/// Opening or reading the file.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        hasher.update(block.get(..n).unwrap_or_default());
    }
    Ok(to_hex(&hasher.finalize()))
}

impl SiteKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // HMAC zero-pads keys shorter than the hash block (64 bytes), so the
        // padded block gives the same MAC as the 32-byte key, infallibly.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(bytes);
        let mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block.into());
        let mut h = Sha256::new();
        h.update(b"imnm-key-id");
        h.update(bytes);
        let id = to_hex(&h.finalize())[..16].to_string();
        Self { mac, id }
    }

    /// Reads a key file written by [`generate`], refusing one readable by group or others.
    pub fn load(path: &Path) -> Result<Self, DeidError> {
        check_private(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| DeidError::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        let bytes = from_hex(text.trim()).filter(|b| b.len() == 32);
        let bytes: [u8; 32] = bytes
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| DeidError::KeyFormat {
                path: path.to_path_buf(),
            })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key's fingerprint: first 16 hex digits of SHA-256("imnm-key-id" + key).
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of `message` under the key.
    pub fn hmac(&self, message: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The pseudonym of resource `Type/id`: HMAC hex, truncated to 128 bits.
    pub fn pseudonym(&self, resource_type: &str, id: &str) -> String {
        let mut mac = self.mac.clone();
        for part in [resource_type, "/", id] {
            mac.update(part.as_bytes());
        }
        let h: [u8; 32] = mac.finalize().into_bytes().into();
        to_hex(&h[..PSEUDONYM_HEX / 2])
    }

    /// The date offset of a patient: ±1..=`max_days` days, never 0.
    pub fn offset_days(&self, patient_id: &str, max_days: u32) -> i64 {
        let h = self.hmac(&format!("date-shift/Patient/{patient_id}"));
        let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let magnitude = (n % u64::from(max_days.max(1))) as i64 + 1;
        if h[8] & 1 == 0 {
            magnitude
        } else {
            -magnitude
        }
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), DeidError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| DeidError::KeyRead {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(DeidError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), DeidError> {
    Ok(())
}

/// Writes a new random 256-bit key to `path` (mode 0600); never overwrites.
pub fn generate(path: &Path) -> Result<SiteKey, DeidError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|source| DeidError::Random { source })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            DeidError::KeyExists {
                path: path.to_path_buf(),
            }
        } else {
            DeidError::KeyWrite {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut file = options.open(path).map_err(write_err)?;
    writeln!(file, "{}", to_hex(&bytes)).map_err(write_err)?;
    Ok(SiteKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_and_offsets_never_zero() {
        let a = SiteKey::from_bytes(&[1; 32]);
        let b = SiteKey::from_bytes(&[2; 32]);
        assert_eq!(a.pseudonym("Patient", "x"), a.pseudonym("Patient", "x"));
        assert_ne!(a.pseudonym("Patient", "x"), b.pseudonym("Patient", "x"));
        assert_ne!(a.pseudonym("Patient", "x"), a.pseudonym("Observation", "x"));
        assert_eq!(a.pseudonym("Patient", "x").len(), PSEUDONYM_HEX);
        assert_eq!(
            a.pseudonym("Patient", "x"),
            to_hex(&a.hmac("Patient/x"))[..PSEUDONYM_HEX]
        );
        assert_eq!(to_hex(&[0, 9, 10, 255]), "00090aff");
        for i in 0..500 {
            let d = a.offset_days(&i.to_string(), 180);
            assert!(d != 0 && d.abs() <= 180, "{d}");
        }
        assert_ne!(a.key_id(), b.key_id());
        assert!(!format!("{a:?}").contains("0101"));
    }
}
