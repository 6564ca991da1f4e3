//! Abuse limits kept in this process: request rates per key (a box's task, for the callback
//! API) in fixed one-second windows, and concurrent live-event streams per user. Sign-in
//! lockout lives in the database instead, so every replica agrees on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The numbers, with defaults a real deployment can live with.
#[derive(Debug, Clone)]
pub struct LimitConfig {
    /// Callback requests per second per box.
    pub callbacks_per_s: u32,
    /// Live-event streams open at once per user.
    pub streams_per_user: usize,
    /// Failed sign-ins in a row before the account is locked.
    pub login_failures: i64,
    /// How long a locked account stays locked.
    pub lockout: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            callbacks_per_s: 200,
            streams_per_user: 20,
            login_failures: 5,
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// The live counters.
#[derive(Default)]
pub struct Limits {
    pub config: LimitConfig,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

/// Holds one stream's place; gives it back when dropped (the client went away).
pub struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut map = self.streams.lock().expect("limits lock");
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

impl Limits {
    pub fn new(config: LimitConfig) -> Self {
        Limits {
            config,
            ..Default::default()
        }
    }

    /// Counts a request for `key`; past `per_s` in the current second, says how long to wait.
    pub fn hit(&self, key: &str, per_s: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.windows.lock().expect("limits lock");
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > per_s {
            return Err(Duration::from_secs(1).saturating_sub(now.duration_since(entry.0)));
        }
        Ok(())
    }

    /// Takes a stream slot for `user`, or refuses past the limit.
    pub fn open_stream(&self, user: &str) -> Option<StreamSlot> {
        let mut map = self.streams.lock().expect("limits lock");
        let n = map.entry(user.to_string()).or_insert(0);
        if *n >= self.config.streams_per_user {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            streams: self.streams.clone(),
            user: user.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_past_its_rate_waits_and_slots_come_back_when_dropped() {
        let l = Limits::new(LimitConfig {
            streams_per_user: 2,
            ..LimitConfig::default()
        });
        for _ in 0..3 {
            assert!(l.hit("a", 3).is_ok());
        }
        assert!(l.hit("a", 3).is_err());
        assert!(l.hit("b", 3).is_ok(), "keys are separate");
        let s1 = l.open_stream("u").unwrap();
        let _s2 = l.open_stream("u").unwrap();
        assert!(l.open_stream("u").is_none());
        drop(s1);
        assert!(l.open_stream("u").is_some());
    }
}
