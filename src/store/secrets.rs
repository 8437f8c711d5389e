//! The `server_secrets` table: secrets every replica on one database
//! shares, such as the key that signs page tokens.

use sea_orm::{ActiveValue::Set, EntityTrait as _};

use super::{Store, entities::server_secrets, errors::Classify as _};
use crate::error::Error;

impl Store {
    /// The secret named `name`, shared by every replica on this database:
    /// created at random by whichever replica asks first.
    pub async fn secret(&self, name: &str) -> Result<Vec<u8>, Error> {
        let fresh: [u8; 32] = rand::random();
        server_secrets::Entity::insert(server_secrets::ActiveModel {
            name: Set(name.to_owned()),
            value: Set(hex(&fresh)),
        })
        .on_conflict_do_nothing()
        .exec(&self.db)
        .await
        .classify(self.dialect)?;
        let stored = server_secrets::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await
            .classify(self.dialect)?
            .ok_or_else(|| Error::internal(format!("secret {name:?} vanished after insert")))?;
        Ok(stored.value.into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
