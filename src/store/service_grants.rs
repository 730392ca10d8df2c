//! A client's own grants for `client_credentials` tokens (RFC 6749 §4.4; issue 33). A service
//! token is an ordinary sealed access token of such a grant, so checking, introspecting, revoking
//! and key rotation treat it as any access token; the grant names no user (its `sub` is the
//! client id, its generation `SERVICE_GENERATION`). There is one per client, scope and resource,
//! made on first use with an id derived from the three, so every node finds the same one and
//! the tree holds a handful however many tokens are issued.

use super::{decode, encode, Grant, Rotation, Store, StoreError, SERVICE_GENERATION};
use crate::base::secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

impl Store {
    /// The service grant of `client_id` for `scope` and `resource`, made (and flushed) if it
    /// does not exist yet.
    pub async fn service_grant(
        &self,
        client_id: &str,
        scope: &str,
        resource: Option<&str>,
        now: u64,
    ) -> Result<Grant, StoreError> {
        let id = service_grant_id(client_id, scope, resource);
        if let Some(grant) = self.grant(&id)? {
            if grant.is_service() && grant.client_id == client_id {
                return Ok(grant);
            }
        }
        let grant = Grant {
            id: id.clone(),
            sub: client_id.to_string(),
            username: String::new(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            created_at: now,
            expires_at: 0,
            generation: SERVICE_GENERATION,
            secret: None,
            rotation: Rotation::default(),
            resource: resource.map(str::to_string),
        };
        {
            let _writing = self.writing();
            // Of two nodes making it at once, either's record will do: they are the same but
            // for the time.
            self.grants.insert(id.as_bytes(), encode(&grant))?;
        }
        self.flush().await?;
        match self.grants.get(id.as_bytes())? {
            Some(bytes) => decode(&bytes),
            None => Ok(grant),
        }
    }
}

/// 22 base64url characters, like a random grant id, derived from what the grant is for.
fn service_grant_id(client_id: &str, scope: &str, resource: Option<&str>) -> String {
    let digest = secret::sha256(
        [
            "linkgate service grant",
            client_id,
            scope,
            resource.unwrap_or(""),
            if resource.is_some() { "1" } else { "0" },
        ]
        .join("\0")
        .as_bytes(),
    );
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_grant_per_client_scope_and_resource_made_once_and_not_a_users_link() {
        let (_dir, store) = crate::store::fixtures::temp_store();
        let a = store
            .service_grant("mcp", "catalog", Some("https://mcp.example/mcp"), 100)
            .await
            .unwrap();
        let again = store
            .service_grant("mcp", "catalog", Some("https://mcp.example/mcp"), 200)
            .await
            .unwrap();
        assert_eq!(a.id, again.id);
        assert_eq!(again.created_at, 100, "made once");
        assert_eq!(a.id.len(), 22);
        assert!(a.is_service() && a.sub == "mcp" && a.username.is_empty());
        assert_eq!(a.resource.as_deref(), Some("https://mcp.example/mcp"));
        for other in [
            store.service_grant("mcp", "", Some("https://mcp.example/mcp"), 100),
            store.service_grant("mcp", "catalog", None, 100),
            store.service_grant("other", "catalog", Some("https://mcp.example/mcp"), 100),
        ] {
            assert_ne!(other.await.unwrap().id, a.id);
        }
        // Not a customer's link: not listed, and the sweep keeps it.
        assert!(store.live_grants(300).unwrap().is_empty());
        assert!(store
            .user_grants("mcp")
            .unwrap()
            .iter()
            .all(Grant::is_service));
        store.sweep(300, || {}).unwrap();
        assert!(store.grant(&a.id).unwrap().is_some());
    }
}
