//! When a box's Apiary is gone. A box outlives a restart of `serve` (it is detached on
//! purpose), but not its Apiary for good: when Apiary says the box is no longer its (401 or
//! 404 to a callback: the task is gone, the box torn down, the token revoked), or has not
//! answered for `orphan_s`, the box stops its agent, empties its folder and exits. While idle
//! the box asks Apiary every `orphan_s / 6` (1 to 60 s) so it notices without a callback.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// What the callback client has learned about Apiary.
pub struct Liveness {
    last_ok: Mutex<Instant>,
    disowned: watch::Sender<Option<String>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            last_ok: Mutex::new(Instant::now()),
            disowned: watch::channel(None).0,
        }
    }
}

impl Liveness {
    /// Apiary answered.
    pub fn touch(&self) {
        *self.last_ok.lock().expect("not poisoned") = Instant::now();
    }

    /// Apiary said the box is no longer its.
    pub fn disown(&self, why: String) {
        self.disowned.send_if_modified(|d| {
            let first = d.is_none();
            if first {
                *d = Some(why);
            }
            first
        });
    }

    fn since_ok(&self) -> Duration {
        self.last_ok.lock().expect("not poisoned").elapsed()
    }
}

/// How often an idle box asks Apiary.
pub fn interval(orphan: Duration) -> Duration {
    (orphan / 6).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Resolves with the reason once the box is an orphan: disowned, or unanswered for `orphan`.
/// `ping` asks Apiary once (its outcome reaches `live` through the callback client).
pub async fn orphaned<F, Fut>(live: &Liveness, orphan: Duration, ping: F) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut disowned = live.disowned.subscribe();
    let mut tick = tokio::time::interval(interval(orphan));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(why) = disowned.borrow_and_update().clone() {
            return why;
        }
        if live.since_ok() > orphan {
            return format!(
                "Apiary has not answered for {} s (timeouts.orphan_s)",
                orphan.as_secs()
            );
        }
        tokio::select! {
            _ = tick.tick() => ping().await,
            _ = disowned.changed() => {}
        }
    }
}

/// Empties the box's folder (its mount point, when it is one, stays).
pub fn clean(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let gone = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(err) = gone {
            tracing::warn!(path = %path.display(), error = %err, "could not remove");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_disowned_box_knows_at_once_and_a_silent_apiary_after_the_window() {
        let live = Liveness::default();
        live.disown("401 from Apiary".into());
        live.disown("a later reason".into());
        let why = orphaned(&live, Duration::from_secs(600), || async {}).await;
        assert_eq!(why, "401 from Apiary");

        let live = Liveness::default();
        let started = Instant::now();
        let why = orphaned(&live, Duration::from_secs(2), || async {}).await;
        assert!(why.contains("not answered for 2 s"), "{why}");
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_answering_apiary_keeps_the_box() {
        let live = std::sync::Arc::new(Liveness::default());
        let pinged = live.clone();
        let watch = orphaned(&live, Duration::from_secs(2), move || {
            let l = pinged.clone();
            async move { l.touch() }
        });
        let outcome = tokio::time::timeout(Duration::from_secs(5), watch).await;
        assert!(outcome.is_err(), "kept while Apiary answers: {outcome:?}");
    }

    #[test]
    fn the_interval_is_a_sixth_of_the_window_within_bounds() {
        assert_eq!(interval(Duration::from_secs(1800)), Duration::from_secs(60));
        assert_eq!(interval(Duration::from_secs(60)), Duration::from_secs(10));
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
