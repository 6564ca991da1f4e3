//! Streams lines to Apiary in batches, never one request per line: a batch goes out when it
//! holds 500 lines or 250 ms after its first line, whichever comes first; lines are cut to
//! 16 KiB; `flush` sends what is pending (a run's lines go out before its result callback).
//!
//! The queue is bounded ([`QUEUE`] lines), so a box whose Apiary is slow or away never grows
//! without limit: the agent's own output waits for room (its pipe fills and the agent blocks),
//! and the box agent's occasional lines are dropped when it is full, with one marker line
//! saying how many went.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Most lines in one batch.
pub const MAX_BATCH: usize = 500;
/// Longest line sent, in bytes (longer ones are cut).
pub const MAX_LINE: usize = 16 * 1024;
/// How long lines gather before a batch goes out.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// Most lines waiting to be batched.
pub const QUEUE: usize = 4 * MAX_BATCH;

enum Msg {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// Where a batch goes (Apiary's callback API, or a test's recorder).
pub trait Sink: Send + Sync + 'static {
    fn send(&self, lines: Vec<String>) -> impl std::future::Future<Output = ()> + Send;
}

impl Sink for crate::callback::Callback {
    async fn send(&self, lines: Vec<String>) {
        if let Err(e) = self.logs(&lines).await {
            tracing::warn!(error = %e, "could not send agent log lines");
        }
    }
}

/// A handle that queues lines for batching.
#[derive(Clone)]
pub struct LogStream {
    tx: mpsc::Sender<Msg>,
    /// Lines dropped on a full queue since the last marker.
    dropped: Arc<AtomicU64>,
}

/// The line that stands for `n` dropped ones.
fn marker(n: u64) -> String {
    format!("[{n} log lines dropped: the box produced them faster than Apiary took them]")
}

fn cut(mut line: String) -> String {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

impl LogStream {
    /// Starts the batching task over `sink`.
    pub fn start(sink: impl Sink) -> Self {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        tokio::spawn(async move {
            let mut pending: Vec<String> = Vec::new();
            // A batch goes out at most INTERVAL after its first line, however busy the stream.
            let mut due = Instant::now();
            loop {
                let msg = if pending.is_empty() {
                    rx.recv().await
                } else {
                    match tokio::time::timeout_at(due, rx.recv()).await {
                        Ok(m) => m,
                        Err(_) => {
                            sink.send(std::mem::take(&mut pending)).await;
                            continue;
                        }
                    }
                };
                match msg {
                    Some(Msg::Line(l)) => {
                        if pending.is_empty() {
                            due = Instant::now() + INTERVAL;
                        }
                        let lost = counted.swap(0, Ordering::Relaxed);
                        if lost > 0 {
                            pending.push(marker(lost));
                        }
                        pending.push(cut(l));
                        if pending.len() >= MAX_BATCH {
                            sink.send(std::mem::take(&mut pending)).await;
                        }
                    }
                    Some(Msg::Flush(done)) => {
                        let lost = counted.swap(0, Ordering::Relaxed);
                        if lost > 0 {
                            pending.push(marker(lost));
                        }
                        if !pending.is_empty() {
                            sink.send(std::mem::take(&mut pending)).await;
                        }
                        let _ = done.send(());
                    }
                    None => {
                        if !pending.is_empty() {
                            sink.send(pending).await;
                        }
                        return;
                    }
                }
            }
        });
        LogStream { tx, dropped }
    }

    /// Queues a line, or drops it (counted for the marker) when the queue is full.
    pub fn line(&self, line: impl Into<String>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Msg::Line(line.into())) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues a line, waiting for room: for the agent's output, so a full queue slows the
    /// agent down instead of losing what it said.
    pub async fn line_waiting(&self, line: String) {
        let _ = self.tx.send(Msg::Line(line)).await;
    }

    /// Sends everything queued so far, and waits until it went out.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<String>>>>);

    impl Sink for Recorder {
        async fn send(&self, lines: Vec<String>) {
            self.0.lock().unwrap().push(lines);
        }
    }

    #[tokio::test]
    async fn lines_go_out_in_batches_never_one_request_per_line() {
        let rec = Recorder::default();
        let logs = LogStream::start(rec.clone());
        for i in 0..1200 {
            logs.line(format!("line {i}"));
        }
        logs.flush().await;
        let batches = rec.0.lock().unwrap().clone();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 1200);
        assert!(
            batches.len() <= 3,
            "{} requests for 1200 lines",
            batches.len()
        );
        assert!(batches.iter().all(|b| b.len() <= MAX_BATCH));
        assert_eq!(batches[0][0], "line 0");
    }

    #[tokio::test]
    async fn a_quiet_stream_sends_after_the_interval_and_long_lines_are_cut() {
        let rec = Recorder::default();
        let logs = LogStream::start(rec.clone());
        logs.line("a");
        logs.line("é".repeat(MAX_LINE));
        tokio::time::sleep(INTERVAL * 3).await;
        let batches = rec.0.lock().unwrap().clone();
        assert_eq!(batches.len(), 1, "one batch after the interval");
        assert!(batches[0][1].len() <= MAX_LINE);
        assert!(batches[0][1].starts_with('é'));
    }

    #[tokio::test]
    async fn a_steady_trickle_goes_out_every_interval_not_per_line() {
        let rec = Recorder::default();
        let logs = LogStream::start(rec.clone());
        let started = std::time::Instant::now();
        let mut sent = 0;
        while started.elapsed() < INTERVAL * 6 {
            logs.line(format!("tick {sent}"));
            sent += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Before any flush, the time-based batches already went out.
        let before_flush = rec.0.lock().unwrap().len();
        let intervals = (started.elapsed().as_millis() / INTERVAL.as_millis()) as usize;
        logs.flush().await;
        let batches = rec.0.lock().unwrap().clone();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), sent);
        assert!(before_flush >= 3, "{before_flush} batches in {sent} lines");
        assert!(
            batches.len() <= intervals + 2 && batches.len() < sent,
            "{} requests for {sent} lines in {intervals} intervals",
            batches.len()
        );
    }

    /// A sink that holds every batch until told to go on.
    #[derive(Clone)]
    struct Stuck(Recorder, Arc<tokio::sync::Semaphore>);

    impl Sink for Stuck {
        async fn send(&self, lines: Vec<String>) {
            self.1.acquire().await.unwrap().forget();
            self.0.send(lines).await;
        }
    }

    #[tokio::test]
    async fn a_stuck_apiary_never_grows_the_queue_past_its_bound() {
        let rec = Recorder::default();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let logs = LogStream::start(Stuck(rec.clone(), gate.clone()));
        let sent = QUEUE * 5;
        for i in 0..sent {
            logs.line(format!("line {i}"));
            if i == 0 {
                // Let the batcher take the first line and get stuck sending after the interval.
                tokio::time::sleep(INTERVAL * 2).await;
            }
        }
        gate.add_permits(1_000);
        logs.flush().await;
        let lines = rec.0.lock().unwrap().concat();
        let markers: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("lines dropped"))
            .collect();
        assert_eq!(markers.len(), 1, "one marker: {markers:?}");
        let dropped: usize = markers[0]
            .trim_start_matches('[')
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let kept = lines.len() - 1;
        assert_eq!(kept + dropped, sent, "every line is either sent or counted");
        // At most the queue, one batch in flight, and the line that was out already.
        assert!(kept <= QUEUE + MAX_BATCH + 1, "{kept} lines were held");
        assert_eq!(lines[0], "line 0");
    }

    #[tokio::test]
    async fn the_agents_output_waits_for_room_instead_of_being_dropped() {
        let rec = Recorder::default();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let logs = LogStream::start(Stuck(rec.clone(), gate.clone()));
        let writer = logs.clone();
        let sent = QUEUE * 3;
        let pump = tokio::spawn(async move {
            for i in 0..sent {
                writer.line_waiting(format!("out {i}")).await;
            }
        });
        tokio::time::sleep(INTERVAL * 2).await;
        assert!(
            !pump.is_finished(),
            "the writer waits while Apiary is stuck"
        );
        gate.add_permits(1_000);
        pump.await.unwrap();
        logs.flush().await;
        let lines = rec.0.lock().unwrap().concat();
        assert_eq!(lines.len(), sent);
        assert!(lines.iter().all(|l| !l.contains("dropped")));
    }
}
