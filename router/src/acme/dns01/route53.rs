//! Amazon Route 53: `ChangeResourceRecordSets` on the hosted zone of the base domain, signed
//! with AWS Signature Version 4 (written out here: one POST does not justify the AWS SDK).
//!
//! `publish` UPSERTs the TXT set to the one value and `remove` DELETEs exactly it, so one name
//! carries one challenge at a time: the issuer orders the wildcard alone, which needs no more.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

use super::Dns01Provider;

const REGION: &str = "us-east-1";
const SERVICE: &str = "route53";

/// One hosted zone.
pub struct Route53 {
    endpoint: http::Uri,
    zone_id: String,
    access_key_id: String,
    secret: String,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// SigV4 `Authorization` for a request with these parts (no query string).
pub fn sigv4_authorization(
    method: &str,
    host: &str,
    path: &str,
    body_sha256: &str,
    amz_date: &str,
    access_key_id: &str,
    secret: &str,
) -> String {
    let date = &amz_date[..8];
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{body_sha256}\nx-amz-date:{amz_date}\n\n{signed}\n{body_sha256}"
    );
    let scope = format!("{date}/{REGION}/{SERVICE}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, REGION.as_bytes());
    let k_service = hmac(&k_region, SERVICE.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Route53 {
    /// `endpoint`: `https://route53.amazonaws.com`, or a local emulator.
    pub fn new(
        endpoint: &str,
        zone_id: &str,
        access_key_id: &str,
        secret: &str,
    ) -> Result<Self, String> {
        let endpoint: http::Uri = endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("acme.dns01.endpoint: {e}"))?;
        if endpoint.host().is_none() {
            return Err("acme.dns01.endpoint: no host".into());
        }
        let zone_id = zone_id.trim_start_matches("/hostedzone/").to_owned();
        if zone_id.is_empty() || !zone_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("acme.dns01.hosted_zone_id: not a hosted zone id".into());
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("Route 53 TLS: {e}"))?
            .with_root_certificates(super::super::client::client_roots(None)?)
            .with_no_client_auth();
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            endpoint,
            zone_id,
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
            http: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    async fn change(&self, action: &str, fqdn: &str, value: &str) -> Result<(), String> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <ChangeBatch><Changes><Change><Action>{action}</Action><ResourceRecordSet>\
             <Name>{}.</Name><Type>TXT</Type><TTL>60</TTL><ResourceRecords><ResourceRecord>\
             <Value>{}</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>\
             </Changes></ChangeBatch></ChangeResourceRecordSetsRequest>",
            xml_escape(fqdn),
            xml_escape(&format!("\"{value}\"")),
        );
        let path = format!("/2013-04-01/hostedzone/{}/rrset/", self.zone_id);
        let host = match self.endpoint.port_u16() {
            Some(p) => format!("{}:{p}", self.endpoint.host().unwrap_or_default()),
            None => self.endpoint.host().unwrap_or_default().to_owned(),
        };
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let amz_date = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let auth = sigv4_authorization(
            "POST",
            &host,
            &path,
            &hash,
            &amz_date,
            &self.access_key_id,
            &self.secret,
        );
        let scheme = self.endpoint.scheme_str().unwrap_or("https");
        let req = http::Request::post(format!("{scheme}://{host}{path}"))
            .header(http::header::HOST, &host)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &hash)
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::CONTENT_TYPE, "text/xml")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("Route 53 request: {e}"))?;
        let resp = tokio::time::timeout(Duration::from_secs(20), self.http.request(req))
            .await
            .map_err(|_| "Route 53: timed out".to_owned())?
            .map_err(|e| format!("Route 53: {e}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = resp
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(300)
                    .collect()
            })
            .unwrap_or_default();
        Err(format!("Route 53 {action} refused ({status}): {text}"))
    }
}

#[async_trait]
impl Dns01Provider for Route53 {
    async fn publish(&self, fqdn: &str, value: &str) -> Result<(), String> {
        self.change("UPSERT", fqdn, value).await
    }

    async fn remove(&self, fqdn: &str, value: &str) -> Result<(), String> {
        self.change("DELETE", fqdn, value).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature equals botocore's (`botocore.auth.SigV4Auth` for the same request, time
    /// and example credentials), so a wrong step cannot hide behind an emulator that does not
    /// check signatures.
    #[test]
    fn sigv4_matches_an_independent_computation() {
        let auth = sigv4_authorization(
            "POST",
            "route53.amazonaws.com",
            "/2013-04-01/hostedzone/Z123/rrset/",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "20260101T000000Z",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        );
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/route53/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        let sig = auth.rsplit('=').next().unwrap();
        assert_eq!(
            sig,
            "03e46d21aebada3434f751fe5747d46f1a119802e231b98752de83be53c541dc"
        );
    }
}
