//! Alexa app-to-app links (`apps::alexa`): for each customer who linked the skill from the
//! operator's app, what the Alexa skill enablement API needs later (the status the app asks for,
//! the unlink): the region host that accepted the enablement and the customer's Amazon tokens.
//!
//! The Amazon tokens are Amazon's, not linkgate's: they must be kept as they are to be used, so
//! they are as secret as the data directory (0700) or the database. One record per customer and
//! client, replaced by a new link and removed by the unlink; the store's own grants and tokens
//! are kept elsewhere and revoked as usual.

use super::{decode, encode, Store, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlexaLink {
    pub client_id: String,
    pub sub: String,
    /// The Alexa API host that enabled the skill (`api.amazonalexa.com`, or a stand-in's URL).
    pub endpoint: String,
    pub amazon_access_token: String,
    /// Unix seconds when the access token expires.
    pub amazon_access_expires_at: u64,
    /// Empty when Amazon gave none.
    pub amazon_refresh_token: String,
    pub linked_at: u64,
}

fn key(client_id: &str, sub: &str) -> Vec<u8> {
    let mut key = client_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(sub.as_bytes());
    key
}

impl Store {
    pub fn put_alexa_link(&self, link: &AlexaLink) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.app_links
            .insert(key(&link.client_id, &link.sub), encode(link))
    }

    pub fn alexa_link(&self, client_id: &str, sub: &str) -> Result<Option<AlexaLink>, StoreError> {
        match self.app_links.get(key(client_id, sub))? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Removes the link and returns it: of two racing removals, one gets it.
    pub fn remove_alexa_link(
        &self,
        client_id: &str,
        sub: &str,
    ) -> Result<Option<AlexaLink>, StoreError> {
        let _writing = self.writing();
        match self.app_links.remove(key(client_id, sub))? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Forgets the customer's Amazon tokens for every client (`--unlink-user`): once linkgate's
    /// grants are revoked they serve nothing, and they are the customer's Amazon credentials.
    pub fn remove_subject_alexa_links(&self, sub: &str) -> Result<usize, StoreError> {
        let _writing = self.writing();
        let mut keys = Vec::new();
        for entry in self.app_links.iter() {
            let (key, _) = entry?;
            let key: &[u8] = key.as_ref();
            if key.splitn(2, |b| *b == 0).nth(1) == Some(sub.as_bytes()) {
                keys.push(key.to_vec());
            }
        }
        for key in &keys {
            self.app_links.remove(key)?;
        }
        Ok(keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_kept_per_customer_and_client_until_removed() {
        let (_dir, store) = crate::store::fixtures::temp_store();
        let link = AlexaLink {
            client_id: "alexa".into(),
            sub: "c-1".into(),
            endpoint: "api.amazonalexa.com".into(),
            amazon_access_token: "Atza|a".into(),
            amazon_access_expires_at: 100,
            amazon_refresh_token: "Atzr|r".into(),
            linked_at: 1,
        };
        store.put_alexa_link(&link).unwrap();
        assert!(store.alexa_link("alexa", "c-2").unwrap().is_none());
        assert!(store.alexa_link("other", "c-1").unwrap().is_none());
        let read = store.alexa_link("alexa", "c-1").unwrap().unwrap();
        assert_eq!(read.amazon_refresh_token, "Atzr|r");
        assert!(store.remove_alexa_link("alexa", "c-1").unwrap().is_some());
        assert!(store.remove_alexa_link("alexa", "c-1").unwrap().is_none());
        assert!(store.alexa_link("alexa", "c-1").unwrap().is_none());
    }
}
