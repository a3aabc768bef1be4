//! The sessions that the files in `events/` name, put into a table so that
//! each event answers the status `events/expected.json` documents for it
//! (`sessions seed-events`). The list itself lives in that file, beside the
//! events, and is compiled in: the command works from any directory.

use dynamodb_sessions::emulator::fixtures::{now, put_session};
use dynamodb_sessions::{LockToken, SessionStore};
use serde::Deserialize;

/// events/expected.json, as compiled into the binary.
const EXPECTED: &str = include_str!("../../events/expected.json");

/// One session an event expects to find.
#[derive(Debug, Deserialize)]
pub struct Fixture {
    /// The session id, fixed in the event files.
    pub id: String,
    /// The session data, a JSON object.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// When set, the session is locked by a holder with this token (the
    /// unlock and write-through events carry it; the 423 event does not).
    #[serde(default)]
    pub locked_by: Option<String>,
}

#[derive(Deserialize)]
struct Expected {
    sessions: Vec<Fixture>,
}

/// The fixture sessions of events/expected.json.
pub fn fixtures() -> Vec<Fixture> {
    serde_json::from_str::<Expected>(EXPECTED)
        .expect("events/expected.json is valid (checked by the events test)")
        .sessions
}

/// Puts every fixture session into the store's table, replacing what is
/// there under its key (so seeding again resets sessions the events
/// changed), as live sessions written as this store writes them. Returns how
/// many it wrote.
pub async fn seed_events(store: &SessionStore) -> Result<usize, String> {
    let fixtures = fixtures();
    let expires = now() + store.config().session_lifetime.as_secs() as i64;
    for fixture in &fixtures {
        let data = serde_json::Value::Object(fixture.data.clone()).to_string();
        // The ids and tokens are public test fixtures: naming one is harmless.
        let lock = match &fixture.locked_by {
            Some(raw) => Some(LockToken::parse(raw).map_err(|_| format!("{}: malformed locked_by {raw}", fixture.id))?),
            None => None,
        };
        put_session(store, &fixture.id, &data, expires, lock.as_ref()).await;
    }
    Ok(fixtures.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamodb_sessions::emulator::fixtures::store;
    use dynamodb_sessions::{Config, SessionId};

    #[test]
    fn every_fixture_id_is_a_well_formed_session_id() {
        let fixtures = fixtures();
        assert!(fixtures.len() >= 5, "{fixtures:?}");
        for fixture in fixtures {
            assert!(SessionId::parse(&fixture.id).is_ok(), "{}", fixture.id);
        }
    }

    #[tokio::test]
    async fn seeded_sessions_read_back_live_and_locked_ones_refuse_a_write() {
        let store = store(Config::builder().max_lock_wait_time(std::time::Duration::ZERO)).await;
        let written = seed_events(&store).await.unwrap();
        assert_eq!(written, fixtures().len());
        let mut etags = Vec::new();
        for fixture in fixtures() {
            let id = SessionId::parse(&fixture.id).unwrap();
            let session = store.load(&id).await.unwrap();
            assert_eq!(session.data, fixture.data, "{}", fixture.id);
            etags.push(session.etag);
            let write = store.replace(&id, fixture.data.clone(), &Default::default()).await;
            assert_eq!(write.is_err(), fixture.locked_by.is_some(), "{}: {write:?}", fixture.id);
        }
        // Seeding again resets what the writes above changed.
        seed_events(&store).await.unwrap();
        let id = SessionId::parse(&fixtures()[0].id).unwrap();
        assert_eq!(store.load(&id).await.unwrap().etag, etags[0]);
    }
}
