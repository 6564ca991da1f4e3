//! A small client of the Docker Engine API (v1.41, the version Podman's compatible service
//! speaks; Docker answers it too) over the engine's Unix socket: only the calls the container
//! provider makes. Answers are read as JSON values: the provider reads a handful of fields.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::BoxError;

/// The API version every call names.
const API: &str = "v1.41";

/// One engine: Docker's `dockerd` or Podman's `podman system service`.
#[derive(Clone)]
pub struct Engine {
    http: reqwest::Client,
    /// Where the engine listens (`unix:///run/podman/podman.sock`), for messages.
    pub url: String,
    /// Podman, whose compatible API differs in places (it ignores a per-container runtime and
    /// masked paths; networks without DNS are made through its own API).
    pub podman: bool,
}

fn host_err(what: &str, e: impl std::fmt::Display) -> BoxError {
    BoxError::Host(format!("container engine: {what}: {e}"))
}

impl Engine {
    /// Connects to the engine at `url` (`unix:///path`) and asks what it is. Remote engines
    /// (`tcp://`) are refused: a box's control plane and its way out are reached on the
    /// engine's host (run `apiary boxd` there instead).
    pub async fn connect(url: &str) -> Result<Engine, BoxError> {
        let Some(path) = url.strip_prefix("unix://") else {
            return Err(BoxError::Invalid(format!(
                "the container engine must be a local socket (unix:///path), not {url:?}; for \
                 another machine, run `apiary boxd --box-engine unix:///…` there"
            )));
        };
        let http = reqwest::Client::builder()
            .unix_socket(path)
            .timeout(Duration::from_secs(120))
            .no_proxy()
            .build()
            .map_err(|e| host_err("client", e))?;
        let mut engine = Engine {
            http,
            url: url.to_string(),
            podman: false,
        };
        let version = engine.call(Method::GET, "/version", None).await?;
        engine.podman = version["Components"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["Name"] == "Podman Engine"));
        Ok(engine)
    }

    /// Sends a request; the answer's status and body (JSON, or `Null` when empty or not JSON).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<reqwest::Body>,
        content_type: &str,
    ) -> Result<(StatusCode, Value), BoxError> {
        let mut req = self.http.request(method, url(path));
        if let Some(b) = body {
            req = req.header("Content-Type", content_type).body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| host_err(&format!("{} unreachable", self.url), e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| host_err("answer", e))?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }

    /// A call that must succeed; its JSON answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BoxError> {
        let (status, value) = self
            .send(
                method.clone(),
                path,
                body.map(|b| reqwest::Body::from(b.to_string())),
                "application/json",
            )
            .await?;
        if !status.is_success() {
            return Err(host_err(
                &format!("{method} {path} answered {status}"),
                message(&value),
            ));
        }
        Ok(value)
    }

    /// A call whose 404 means "gone" (`None`).
    async fn call_opt(&self, method: Method, path: &str) -> Result<Option<Value>, BoxError> {
        let (status, value) = self.send(method.clone(), path, None, "").await?;
        match status {
            s if s.is_success() => Ok(Some(value)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(host_err(
                &format!("{method} {path} answered {s}"),
                message(&value),
            )),
        }
    }

    /// Whether the image `name` is there.
    pub async fn has_image(&self, name: &str) -> Result<bool, BoxError> {
        Ok(self
            .call_opt(Method::GET, &format!("/images/{}/json", enc(name)))
            .await?
            .is_some())
    }

    /// Imports a root file system (a tar) as the image `name` (`repo:tag`; the tag goes in
    /// `repo`, which Docker and Podman both take).
    pub async fn import_image(&self, name: &str, tar: Vec<u8>) -> Result<(), BoxError> {
        let (status, value) = self
            .send(
                Method::POST,
                &format!("/images/create?fromSrc=-&repo={}", enc(name)),
                Some(reqwest::Body::from(tar)),
                "application/x-tar",
            )
            .await?;
        if !status.is_success() || value.to_string().contains("\"error\"") {
            return Err(host_err("importing the box image", message(&value)));
        }
        Ok(())
    }

    /// The internal network `name` (made when missing: no route out, and on Podman no DNS
    /// either); its gateway address, which is this host.
    pub async fn internal_network(&self, name: &str) -> Result<String, BoxError> {
        let path = format!("/networks/{}", enc(name));
        if self.call_opt(Method::GET, &path).await?.is_none() {
            let made = if self.podman {
                // Podman's own API: the compatible one cannot turn the network's DNS off
                // (which would resolve any name for a box), and without a subnet given an
                // internal network gets no gateway address.
                let subnet = self.free_subnet().await?;
                self.send(
                    Method::POST,
                    "/libpod/networks/create",
                    Some(reqwest::Body::from(
                        json!({ "name": name, "internal": true, "dns_enabled": false,
                                "subnets": [{ "subnet": format!("{subnet}.0/24"), "gateway": format!("{subnet}.1") }],
                                "labels": { "apiary.network": "boxes" } })
                        .to_string(),
                    )),
                    "application/json",
                )
                .await?
            } else {
                self.send(
                    Method::POST,
                    "/networks/create",
                    Some(reqwest::Body::from(
                        json!({ "Name": name, "Internal": true, "CheckDuplicate": true,
                                "Labels": { "apiary.network": "boxes" } })
                        .to_string(),
                    )),
                    "application/json",
                )
                .await?
            };
            // Another process may have made it meanwhile: only its absence is an error.
            if !made.0.is_success() && self.call_opt(Method::GET, &path).await?.is_none() {
                return Err(host_err("creating the boxes' network", message(&made.1)));
            }
        }
        let net = self.call(Method::GET, &path, None).await?;
        if net["Internal"] != Value::Bool(true) {
            return Err(BoxError::Invalid(format!(
                "the network {name:?} exists but is not internal; boxes need one whose only way \
                 out is Apiary's gate (remove it, or name another)"
            )));
        }
        net["IPAM"]["Config"]
            .as_array()
            .and_then(|c| c.iter().find_map(|c| c["Gateway"].as_str()))
            .filter(|g| g.parse::<std::net::IpAddr>().is_ok())
            .map(str::to_string)
            .ok_or_else(|| host_err("the boxes' network", "it has no gateway address"))
    }

    /// A `10.89.N` /24 no network of the engine uses (N from 100).
    async fn free_subnet(&self) -> Result<String, BoxError> {
        let nets = self.call(Method::GET, "/networks", None).await?;
        let used = nets.to_string();
        (100..=250)
            .map(|n| format!("10.89.{n}"))
            .find(|s| !used.contains(&format!("\"{s}.0/24\"")))
            .ok_or_else(|| host_err("the boxes' network", "no free 10.89.N.0/24 subnet"))
    }

    /// Makes a named volume.
    pub async fn create_volume(&self, name: &str, labels: &Value) -> Result<(), BoxError> {
        self.call(
            Method::POST,
            "/volumes/create",
            Some(json!({ "Name": name, "Labels": labels })),
        )
        .await
        .map(|_| ())
    }

    /// Volumes carrying every `key=value` (or `key`) label given.
    pub async fn volumes(&self, labels: &[String]) -> Result<Vec<Value>, BoxError> {
        let filters = json!({ "label": labels }).to_string();
        let v = self
            .call(
                Method::GET,
                &format!("/volumes?filters={}", enc(&filters)),
                None,
            )
            .await?;
        Ok(v["Volumes"].as_array().cloned().unwrap_or_default())
    }

    /// Removes a volume; gone already is fine. The engine refuses (409) while a container
    /// still holds it: a few tries.
    pub async fn remove_volume(&self, name: &str) -> Result<(), BoxError> {
        let path = format!("/volumes/{}", enc(name));
        for _ in 0..20 {
            let (status, value) = self.send(Method::DELETE, &path, None, "").await?;
            match status {
                s if s.is_success() || s == StatusCode::NOT_FOUND => return Ok(()),
                StatusCode::CONFLICT => tokio::time::sleep(Duration::from_millis(100)).await,
                s => {
                    return Err(host_err(
                        &format!("removing volume {name} answered {s}"),
                        message(&value),
                    ))
                }
            }
        }
        Err(host_err(
            "removing volume",
            format!("{name} is still in use"),
        ))
    }

    /// Makes a container (not started); its id.
    pub async fn create_container(&self, name: &str, spec: &Value) -> Result<String, BoxError> {
        let v = self
            .call(
                Method::POST,
                &format!("/containers/create?name={}", enc(name)),
                Some(spec.clone()),
            )
            .await?;
        Ok(v["Id"].as_str().unwrap_or(name).to_string())
    }

    pub async fn start(&self, id: &str) -> Result<(), BoxError> {
        self.call(
            Method::POST,
            &format!("/containers/{}/start", enc(id)),
            None,
        )
        .await
        .map(|_| ())
    }

    /// The container's inspection, or `None` when it is gone.
    pub async fn inspect(&self, id: &str) -> Result<Option<Value>, BoxError> {
        self.call_opt(Method::GET, &format!("/containers/{}/json", enc(id)))
            .await
    }

    /// The OCI runtime a container runs under (`runc`, `runsc`): Podman tells it through its
    /// own API (its compatible one says `oci`), Docker in `HostConfig.Runtime`.
    pub async fn oci_runtime(&self, id: &str) -> Result<Option<String>, BoxError> {
        let v = if self.podman {
            self.call_opt(Method::GET, &format!("/libpod/containers/{}/json", enc(id)))
                .await?
                .map(|c| c["OCIRuntime"].clone())
        } else {
            self.inspect(id)
                .await?
                .map(|c| c["HostConfig"]["Runtime"].clone())
        };
        // Podman names it by path when the service was given one (`/usr/bin/runsc`).
        Ok(v.and_then(|r| {
            r.as_str()
                .and_then(|r| r.rsplit('/').next())
                .map(str::to_string)
        }))
    }

    /// Containers (running or not) carrying every `key=value` (or `key`) label given.
    pub async fn list(&self, labels: &[String]) -> Result<Vec<Value>, BoxError> {
        let filters = json!({ "label": labels }).to_string();
        let v = self
            .call(
                Method::GET,
                &format!("/containers/json?all=1&filters={}", enc(&filters)),
                None,
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Stops and removes a container with its anonymous volumes; gone already is fine.
    pub async fn remove_container(&self, id: &str) -> Result<(), BoxError> {
        let _ = self
            .send(
                Method::POST,
                &format!("/containers/{}/kill?signal=KILL", enc(id)),
                None,
                "",
            )
            .await;
        self.call_opt(
            Method::DELETE,
            &format!("/containers/{}?force=1&v=1", enc(id)),
        )
        .await
        .map(|_| ())
    }

    /// Kills a container's processes (as a crash or an operator would); the container stays.
    pub async fn kill(&self, id: &str) -> Result<(), BoxError> {
        self.call(
            Method::POST,
            &format!("/containers/{}/kill?signal=KILL", enc(id)),
            None,
        )
        .await
        .map(|_| ())
    }

    /// The last lines of a container's output (stdout and stderr).
    pub async fn logs_tail(&self, id: &str, lines: usize) -> String {
        let path = format!(
            "/containers/{}/logs?stdout=1&stderr=1&tail={lines}",
            enc(id)
        );
        let Ok(resp) = self.http.get(url(&path)).send().await else {
            return String::new();
        };
        let bytes = resp.bytes().await.unwrap_or_default();
        demux(&bytes)
    }
}

/// A call's URL (the host is ignored on a Unix socket); Podman's own API (`/libpod/…`) has
/// versions of its own.
fn url(path: &str) -> String {
    let version = if path.starts_with("/libpod/") {
        "v4.0.0"
    } else {
        API
    };
    format!("http://engine/{version}{path}")
}

/// The engine's error message (`{"message": …}`), or the answer itself.
fn message(v: &Value) -> String {
    let text = v["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    text.chars().take(500).collect()
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A log stream without a terminal is framed: an 8-byte header (stream, 0, 0, 0, big-endian
/// length) before each chunk. Unframed text (a terminal's) is taken as is.
fn demux(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 8 && matches!(rest[0], 0..=2) && rest[1..4] == [0, 0, 0] {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_logs_are_joined_and_plain_text_kept() {
        let mut framed = vec![1, 0, 0, 0, 0, 0, 0, 6];
        framed.extend_from_slice(b"hello\n");
        framed.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        framed.extend_from_slice(b"oops");
        assert_eq!(demux(&framed), "hello\noops");
        assert_eq!(demux(b"plain text"), "plain text");
    }

    #[test]
    fn path_segments_and_filters_are_encoded() {
        assert_eq!(
            enc("localhost/apiary-box:host-1"),
            "localhost%2Fapiary-box%3Ahost-1"
        );
        assert_eq!(
            enc("{\"label\":[\"a=b\"]}"),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
    }
}
