//! Streams lines to Apiary in batches, never one request per line: a batch goes out when it
//! holds 500 lines or 250 ms after its first line, whichever comes first; lines are cut to
//! 16 KiB; `flush` sends what is pending (a run's lines go out before its result callback).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Most lines in one batch.
pub const MAX_BATCH: usize = 500;
/// Longest line sent, in bytes (longer ones are cut).
pub const MAX_LINE: usize = 16 * 1024;
/// How long lines gather before a batch goes out.
pub const INTERVAL: Duration = Duration::from_millis(250);

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
pub struct LogStream(mpsc::UnboundedSender<Msg>);

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
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
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
                        pending.push(cut(l));
                        if pending.len() >= MAX_BATCH {
                            sink.send(std::mem::take(&mut pending)).await;
                        }
                    }
                    Some(Msg::Flush(done)) => {
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
        LogStream(tx)
    }

    /// Queues a line.
    pub fn line(&self, line: impl Into<String>) {
        let _ = self.0.send(Msg::Line(line.into()));
    }

    /// Sends everything queued so far, and waits until it went out.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.send(Msg::Flush(tx)).is_ok() {
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
}
