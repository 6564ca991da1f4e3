//! The remote provider: the Box Host API (DESIGN §3) spoken to an `apiary boxd`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;

use crate::{valid_box_id, BoxError, BoxInfo, BoxProvider, CreateBox};

/// A Box Host API client.
pub struct RemoteProvider {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl RemoteProvider {
    /// `base` is the host's URL (`http://host:7879`), `key` its host key.
    pub fn new(base: &str, key: &str) -> Self {
        RemoteProvider {
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, BoxError> {
        req.bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| BoxError::Host(format!("box host unreachable: {e}")))
    }

    async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, BoxError> {
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| BoxError::Host(e.to_string()))?;
        if !status.is_success() {
            return Err(BoxError::Host(format!(
                "box host answered {status}: {}",
                text.chars().take(500).collect::<String>()
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| BoxError::Host(format!("box host sent an unreadable answer: {e}")))
    }
}

#[async_trait]
impl BoxProvider for RemoteProvider {
    async fn create(&self, req: CreateBox) -> Result<BoxInfo, BoxError> {
        let resp = self
            .send(self.http.post(format!("{}/v1/boxes", self.base)).json(&req))
            .await?;
        Self::json(resp).await
    }

    async fn get(&self, id: &str) -> Result<Option<BoxInfo>, BoxError> {
        if !valid_box_id(id) {
            return Ok(None);
        }
        let resp = self
            .send(self.http.get(format!("{}/v1/boxes/{id}", self.base)))
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Self::json(resp).await.map(Some)
    }

    async fn list(&self, label: Option<(&str, &str)>) -> Result<Vec<BoxInfo>, BoxError> {
        let mut req = self.http.get(format!("{}/v1/boxes", self.base));
        if let Some((k, v)) = label {
            req = req.query(&[("label", format!("{k}={v}"))]);
        }
        Self::json(self.send(req).await?).await
    }

    async fn destroy(&self, id: &str) -> Result<(), BoxError> {
        let resp = self
            .send(self.http.delete(format!("{}/v1/boxes/{id}", self.base)))
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(BoxError::Host(format!(
            "box host answered {} to destroy",
            resp.status()
        )))
    }

    async fn templates(&self) -> Result<Vec<String>, BoxError> {
        Self::json(
            self.send(self.http.get(format!("{}/v1/templates", self.base)))
                .await?,
        )
        .await
    }
}
