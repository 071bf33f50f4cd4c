//! RFC 2136 dynamic update signed with TSIG (RFC 8945), over TCP to the zone's primary (BIND,
//! Knot, PowerDNS). Adds and deletes single TXT values, so concurrent challenges for the same
//! name do not remove each other's records.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_client::proto::dnssec::tsig::TSigner;
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::TXT;
use hickory_client::proto::rr::{DNSClass, Name, RData, Record};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::tcp::TcpClientStream;

use super::Dns01Provider;

/// TTL of challenge records: short, so a retried challenge is not answered from a cache.
const TTL: u32 = 60;

/// A zone's primary, with the TSIG key allowed to update it.
pub struct Rfc2136 {
    server: SocketAddr,
    zone: Name,
    signer: TSigner,
}

impl Rfc2136 {
    /// `key_secret` is the base64 secret as BIND's `tsig-keygen` prints it.
    pub fn new(
        server: SocketAddr,
        zone: &str,
        key_name: &str,
        key_secret: &str,
        algorithm: &str,
    ) -> Result<Self, String> {
        let zone = Name::from_ascii(zone).map_err(|e| format!("acme.dns01.zone: {e}"))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_secret.trim())
            .map_err(|_| "acme.dns01.key_secret is not base64".to_owned())?;
        let algorithm = match algorithm {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => return Err(format!("acme.dns01.algorithm: {other:?} is not supported")),
        };
        let key_name =
            Name::from_ascii(key_name).map_err(|e| format!("acme.dns01.key_name: {e}"))?;
        let signer = TSigner::new(key, algorithm, key_name, 300)
            .map_err(|e| format!("acme.dns01: TSIG key: {e}"))?;
        Ok(Self {
            server,
            zone,
            signer,
        })
    }

    async fn client(&self) -> Result<Client, String> {
        let (stream, sender) = TcpClientStream::new(
            self.server,
            None,
            Some(Duration::from_secs(10)),
            TokioRuntimeProvider::new(),
        );
        let (client, background) = Client::with_timeout(
            stream,
            sender,
            Duration::from_secs(10),
            Some(Arc::new(self.signer.clone())),
        )
        .await
        .map_err(|e| format!("DNS update server {}: {e}", self.server))?;
        tokio::spawn(background);
        Ok(client)
    }

    fn record(&self, fqdn: &str, value: &str) -> Result<Record, String> {
        let mut name = Name::from_ascii(fqdn).map_err(|e| format!("{fqdn}: {e}"))?;
        name.set_fqdn(true);
        if !self.zone.zone_of(&name) {
            return Err(format!("{fqdn} is not in the zone {}", self.zone));
        }
        let mut r = Record::from_rdata(name, TTL, RData::TXT(TXT::new(vec![value.to_owned()])));
        r.set_dns_class(DNSClass::IN);
        Ok(r)
    }
}

fn check(code: ResponseCode, what: &str) -> Result<(), String> {
    if code == ResponseCode::NoError {
        Ok(())
    } else {
        Err(format!("DNS update ({what}) refused: {code}"))
    }
}

#[async_trait]
impl Dns01Provider for Rfc2136 {
    async fn publish(&self, fqdn: &str, value: &str) -> Result<(), String> {
        let record = self.record(fqdn, value)?;
        let mut client = self.client().await?;
        let resp = client
            .append(record, self.zone.clone(), false)
            .await
            .map_err(|e| format!("DNS update (add): {e}"))?;
        check(resp.response_code(), "add")
    }

    async fn remove(&self, fqdn: &str, value: &str) -> Result<(), String> {
        let record = self.record(fqdn, value)?;
        let mut client = self.client().await?;
        let resp = client
            .delete_by_rdata(record, self.zone.clone())
            .await
            .map_err(|e| format!("DNS update (delete): {e}"))?;
        check(resp.response_code(), "delete")
    }
}
