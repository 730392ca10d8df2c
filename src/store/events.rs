//! Each user's recent security events (sign-ins, links, password changes, admin actions), for the
//! "recent activity" list on `/account`. Bounded: the newest `MAX_EVENTS` per user are kept, in
//! one record per user keyed by `sub`, so a flood of failed sign-ins cannot grow the store.

use super::{decode, encode, Store, StoreError};
use serde::{Deserialize, Serialize};

/// Events kept per user.
pub const MAX_EVENTS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SignIn,
    SignInFailed,
    Link,
    Unlink,
    PasswordChanged,
    /// `--set-password`, `--unlink-user`, `--reset-password`, `--invite`.
    Admin,
    /// Two-factor sign-in turned on or off on `/account`.
    TotpOn,
    TotpOff,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub at: u64,
    /// The client's address, when a browser did it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// What else to say: the client's id, `account`, the admin command.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Store {
    /// Adds an event to the user's list, dropping the oldest beyond `MAX_EVENTS`.
    pub fn add_event(&self, sub: &str, event: Event) -> Result<(), StoreError> {
        let _exclusive = self.exclusive()?;
        let _writing = self.writing();
        let mut events = self.events_of(sub)?;
        events.push(event);
        if events.len() > MAX_EVENTS {
            events.drain(..events.len() - MAX_EVENTS);
        }
        self.events.insert(sub.as_bytes(), encode(&events))?;
        Ok(())
    }

    /// The user's events, newest first.
    pub fn recent_events(&self, sub: &str) -> Result<Vec<Event>, StoreError> {
        let mut events = self.events_of(sub)?;
        events.reverse();
        Ok(events)
    }

    pub(super) fn drop_events(&self, sub: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.events.remove(sub.as_bytes())?;
        Ok(())
    }

    fn events_of(&self, sub: &str) -> Result<Vec<Event>, StoreError> {
        match self.events.get(sub.as_bytes())? {
            Some(bytes) => decode(&bytes),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_keeps_the_newest_events_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        for at in 0..(MAX_EVENTS as u64 + 5) {
            let event = Event {
                kind: EventKind::SignInFailed,
                at,
                ip: None,
                detail: String::new(),
            };
            store.add_event("s", event).unwrap();
        }
        let events = store.recent_events("s").unwrap();
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(events[0].at, MAX_EVENTS as u64 + 4, "newest first");
        assert_eq!(events[MAX_EVENTS - 1].at, 5);
        assert!(store.recent_events("other").unwrap().is_empty());
        store.drop_events("s").unwrap();
        assert!(store.recent_events("s").unwrap().is_empty());
    }
}
