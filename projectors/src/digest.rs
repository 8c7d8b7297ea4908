//! The digest of a read model: a SHA-256 over its content (every document,
//! in key order), leaving out positions and bookkeeping. Two views with the
//! same documents have the same digest, however they were built.

use sha2::{Digest, Sha256};

use crate::viewdb::{ViewDb, ViewError};

/// The hex SHA-256 of a view's documents.
pub fn digest(db: &ViewDb) -> Result<String, ViewError> {
    let mut hasher = Sha256::new();
    for item in db.content() {
        let (key, value) = item?;
        hasher.update((key.len() as u64).to_le_bytes());
        hasher.update(&key);
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(&value);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The digest of a view with no documents (one never built).
pub fn empty() -> String {
    hex::encode(Sha256::new().finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_view_has_the_empty_digest() {
        let db = ViewDb::temporary().unwrap();
        assert_eq!(digest(&db).unwrap(), empty());
    }
}
