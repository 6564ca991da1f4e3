//! Abuse limits kept in this process: request rates per key (a box's task, for the callback
//! API; a client address, for sign-in) in fixed windows, concurrent live-event streams per
//! user, and the password checks running at once (each Argon2 check holds about 19 MiB).
//! Sign-in lockout lives in the database instead, so every replica agrees on it.

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
    /// Password checks running at once in this process; past it sign-in answers 429.
    pub login_concurrency: usize,
    /// Sign-in attempts per client address per minute.
    pub logins_per_minute: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            callbacks_per_s: 200,
            streams_per_user: 20,
            login_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            login_concurrency: 4,
            logins_per_minute: 30,
        }
    }
}

/// The live counters.
pub struct Limits {
    pub config: LimitConfig,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    streams: Arc<Mutex<HashMap<String, usize>>>,
    login_checks: Arc<tokio::sync::Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitConfig::default())
    }
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
            login_checks: Arc::new(tokio::sync::Semaphore::new(config.login_concurrency)),
            config,
            windows: Mutex::default(),
            streams: Arc::default(),
        }
    }

    /// Counts a request for `key`; past `per_s` in the current second, says how long to wait.
    pub fn hit(&self, key: &str, per_s: u32) -> Result<(), Duration> {
        self.hit_in(key, per_s, Duration::from_secs(1))
    }

    /// Counts a request for `key`; past `max` in the current `window` (at most a minute),
    /// says how long to wait.
    pub fn hit_in(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.windows.lock().expect("limits lock");
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > max {
            return Err(window.saturating_sub(now.duration_since(entry.0)));
        }
        Ok(())
    }

    /// A place for one password check, or `None` when [`LimitConfig::login_concurrency`]
    /// checks are running already.
    pub fn login_check(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.login_checks.clone().try_acquire_owned().ok()
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
