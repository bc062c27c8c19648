//! A blocking client for the admin HTTP API (used by `pagecore` admin commands, the bench and
//! the tests). Plain HTTP, or HTTPS with [`AdminClient::with_tls`] for a server with
//! `[tls] admin` on.

pub use crate::admin::{TenantInfo, TimelineInfo};
use crate::tls::ClientTls;
use std::net::ToSocketAddrs;
use std::time::Duration;
use wal::{TenantId, TimelineId};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin request to {url} failed: {message}")]
    Request { url: String, message: String },
    #[error("admin API answered {status} for {url}: {body}")]
    Status { url: String, status: u16, body: String },
}

pub struct AdminClient {
    base: String,
    agent: ureq::Agent,
    /// `Authorization` header value, for a server with `auth.admin_token_file`.
    bearer: Option<String>,
}

impl AdminClient {
    /// `addr` is `host:port` of the admin listener.
    pub fn new(addr: &str) -> AdminClient {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
        AdminClient { base: format!("http://{addr}"), agent, bearer: None }
    }

    /// HTTPS to `addr`, trusting `tls`'s CA and verifying its server name (which need not
    /// resolve: requests go to `addr`). `token`: the admin bearer token, if the server needs one.
    pub fn with_tls(addr: &str, tls: &ClientTls, token: Option<&str>) -> AdminClient {
        let target: Vec<_> = addr.to_socket_addrs().map(Iterator::collect).unwrap_or_default();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .tls_config(tls.admin_config())
            .resolver(move |_: &str| Ok(target.clone()))
            .build();
        let port = addr.rsplit_once(':').map_or("443", |(_, port)| port);
        let host = match tls.server_name() {
            name if name.contains(':') => format!("[{name}]"), // an IPv6 address
            name => name,
        };
        AdminClient {
            base: format!("https://{host}:{port}"),
            agent,
            bearer: token.map(|token| format!("Bearer {token}")),
        }
    }

    /// Like [`AdminClient::new`], sending `token` as `Authorization: Bearer` on every request.
    pub fn with_token(addr: &str, token: &str) -> AdminClient {
        AdminClient { bearer: Some(format!("Bearer {token}")), ..AdminClient::new(addr) }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, AdminError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.agent.request(method, &url);
        if let Some(bearer) = &self.bearer {
            request = request.set("Authorization", bearer);
        }
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => response
                .into_string()
                .map_err(|e| AdminError::Request { url, message: e.to_string() }),
            Err(ureq::Error::Status(status, response)) => {
                let body = response.into_string().unwrap_or_default();
                Err(AdminError::Status { url, status, body })
            }
            Err(other) => Err(AdminError::Request { url, message: other.to_string() }),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, text: String) -> Result<T, AdminError> {
        serde_json::from_str(&text)
            .map_err(|e| AdminError::Request { url: self.base.clone(), message: e.to_string() })
    }

    pub fn ready(&self) -> bool {
        self.call("GET", "/ready", None).is_ok()
    }

    pub fn create_tenant(&self, tenant_id: Option<TenantId>) -> Result<TenantInfo, AdminError> {
        self.create_tenant_with(tenant_id, None, None)
    }

    /// Creates a tenant with a key provider (`"none"`: plaintext) and CMK name other than the
    /// server's defaults.
    pub fn create_tenant_with(
        &self,
        tenant_id: Option<TenantId>,
        key_provider: Option<&str>,
        cmk: Option<&str>,
    ) -> Result<TenantInfo, AdminError> {
        let mut body = serde_json::json!({ "tenant_id": tenant_id.map(|t| t.to_string()) });
        if let Some(provider) = key_provider {
            body["key_provider"] = provider.into();
        }
        if let Some(cmk) = cmk {
            body["cmk"] = cmk.into();
        }
        let text = self.call("POST", "/v1/tenants", Some(body))?;
        self.parse(text)
    }

    pub fn create_timeline(
        &self,
        tenant_id: TenantId,
        timeline_id: Option<TimelineId>,
    ) -> Result<TimelineInfo, AdminError> {
        let body = serde_json::json!({ "timeline_id": timeline_id.map(|t| t.to_string()) });
        let text = self.call("POST", &format!("/v1/tenants/{tenant_id}/timelines"), Some(body))?;
        self.parse(text)
    }

    pub fn tenants(&self) -> Result<Vec<TenantInfo>, AdminError> {
        let text = self.call("GET", "/v1/tenants", None)?;
        self.parse(text)
    }

    pub fn tenant(&self, tenant_id: TenantId) -> Result<TenantInfo, AdminError> {
        let text = self.call("GET", &format!("/v1/tenants/{tenant_id}"), None)?;
        self.parse(text)
    }
}
