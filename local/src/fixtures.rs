//! The sessions that the files in `events/` name, put into a table so that
//! each event answers the status `events/expected.json` documents for it
//! (`sessions seed-events`). The list itself lives in that file, beside the
//! events, and is compiled in: the command works from any directory.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb_sessions::Config;
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

/// How long a fixture's lock holds: long enough that a person working
/// through the events by hand still finds the sessions locked.
const LOCK_HOLDS_FOR_MS: i64 = 24 * 60 * 60 * 1000;

/// Puts every fixture session into the configured table, replacing what is
/// there under its key (so seeding again resets sessions the events changed).
/// Returns how many it wrote.
pub async fn seed_events(client: &Client, config: &Config) -> Result<usize, String> {
    let fixtures = fixtures();
    for fixture in &fixtures {
        put_fixture(client, config, fixture).await?;
    }
    Ok(fixtures.len())
}

/// Writes one fixture as a live session item in the PHP handler's layout,
/// version 1, expiring one session lifetime from now. The one place that
/// knows the item's attributes (the lock's among them).
async fn put_fixture(client: &Client, config: &Config, fixture: &Fixture) -> Result<(), String> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let expires = now_ms / 1000 + config.session_lifetime.as_secs() as i64;
    let number = |value: i64| AttributeValue::N(value.to_string());
    let mut put = client
        .put_item()
        .table_name(&config.table_name)
        .item(&config.hash_key, AttributeValue::S(config.item_key(&fixture.id)))
        .item(&config.data_attribute, AttributeValue::S(serde_json::Value::Object(fixture.data.clone()).to_string()))
        .item(&config.session_lifetime_attribute, number(expires))
        .item("version", number(1));
    if let Some(token) = &fixture.locked_by {
        put = put
            .item("lock", number(1))
            .item("lock_token", AttributeValue::S(token.clone()))
            .item("lock_until_ms", number(now_ms + LOCK_HOLDS_FOR_MS));
    }
    // The ids are public test fixtures, so naming one in an error is harmless.
    put.send().await.map_err(|e| format!("cannot put fixture session {}: {}", fixture.id, DisplayErrorContext(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamodb_sessions::{create_sessions_table, emulator, SessionId, SessionStore};

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
        let config = Config::builder().table_name(format!("seed-{}", std::process::id())).build().unwrap();
        let client = emulator::client(emulator::shared_endpoint());
        create_sessions_table(&client, &config, 5, 5).await.unwrap();
        let written = seed_events(&client, &config).await.unwrap();
        assert_eq!(written, fixtures().len());

        let store = SessionStore::new(client, config);
        for fixture in fixtures() {
            let id = SessionId::parse(&fixture.id).unwrap();
            let session = store.load(&id).await.unwrap();
            assert_eq!(session.data, fixture.data, "{}", fixture.id);
            assert_eq!(session.version, 1);
            let write = store.replace(&id, fixture.data.clone(), &Default::default()).await;
            assert_eq!(write.is_err(), fixture.locked_by.is_some(), "{}: {write:?}", fixture.id);
        }
        // Seeding again resets what the writes above changed.
        seed_events(store.client(), store.config()).await.unwrap();
        let id = SessionId::parse(&fixtures()[0].id).unwrap();
        assert_eq!(store.load(&id).await.unwrap().version, 1);
    }
}
