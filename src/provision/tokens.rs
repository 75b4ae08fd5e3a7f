//! API tokens: 32 random bytes shown once, stored as a keyed hash.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;

use super::{ProvisionError, Provisioner, invalid};

/// HMAC purpose for API tokens.
pub const TOKEN: &str = "api-token";

#[derive(Clone, Debug, Serialize)]
pub struct NewToken {
    pub id: i64,
    pub name: String,
    /// Shown this once.
    pub token: String,
}

impl Provisioner {
    fn token_hash(&self, token: &str) -> Result<String, ProvisionError> {
        let secret = self
            .secret
            .as_ref()
            .ok_or_else(|| invalid("token", "no secret file loaded"))?;
        Ok(secret.hash(TOKEN, token))
    }

    pub async fn create_token(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<NewToken, ProvisionError> {
        super::check_name("name", name)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("dg_{}", hex::encode(bytes));
        let id = self
            .store
            .insert_token(name.trim(), &self.token_hash(&token)?, now)
            .await?;
        Ok(NewToken {
            id,
            name: name.trim().to_owned(),
            token,
        })
    }

    pub async fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<(), ProvisionError> {
        if self.store.revoke_token(id, now).await? {
            Ok(())
        } else {
            Err(ProvisionError::NotFound {
                what: "unrevoked token",
                name: id.to_string(),
            })
        }
    }

    /// Whether `token` is a live API token.
    pub async fn token_valid(&self, token: &str) -> Result<bool, ProvisionError> {
        if token.len() > 200 {
            return Ok(false);
        }
        Ok(self.store.token_valid(&self.token_hash(token)?).await?)
    }
}
