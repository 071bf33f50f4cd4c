//! Response compression (gzip, brotli) for the requests that ask for it.
//!
//! Pingora's own compression module builds its context for every request and, for every
//! response, matches the content type against a regular expression and adds
//! `Vary: Accept-Encoding`, even when the client accepts no encoding and nothing can be
//! compressed: about 1.8k instructions per request in the router benchmark. This module
//! creates the same context (`ResponseCompressionCtx`, so the decisions are Pingora's) only
//! when the request carries `Accept-Encoding`. A request without it gets the upstream's
//! response untouched and without an added `Vary`, as nginx does with `gzip_vary` off: an
//! uncompressed response is correct for every client, so a cache storing it serves nothing
//! wrong.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module, ModuleBuilder};
use pingora::protocols::http::compression::ResponseCompressionCtx;

/// Builds the per-request module; add it with `HttpModules::add_module`.
pub struct LazyCompression {
    level: u32,
}

impl LazyCompression {
    /// Compression at `level` (gzip and brotli) for requests that accept an encoding.
    pub fn module(level: u32) -> ModuleBuilder {
        Box::new(Self { level })
    }
}

impl HttpModuleBuilder for LazyCompression {
    fn order(&self) -> i16 {
        // Late, like Pingora's module: other response filters see the uncompressed body.
        i16::MIN / 2
    }

    fn init(&self) -> Module {
        Box::new(PerRequest {
            level: self.level,
            ctx: None,
        })
    }
}

/// One request's state: no context until the request accepts an encoding.
struct PerRequest {
    level: u32,
    ctx: Option<Box<ResponseCompressionCtx>>,
}

#[async_trait]
impl HttpModule for PerRequest {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> pingora::Result<()> {
        if req.headers.contains_key(http::header::ACCEPT_ENCODING) {
            let mut ctx = ResponseCompressionCtx::new(self.level, false, false);
            ctx.request_filter(req);
            self.ctx = Some(Box::new(ctx));
        }
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> pingora::Result<()> {
        if let Some(ctx) = &mut self.ctx {
            ctx.response_header_filter(resp, end_of_stream);
        }
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> pingora::Result<()> {
        let Some(ctx) = self.ctx.as_mut().filter(|c| c.is_enabled()) else {
            return Ok(());
        };
        if let Some(compressed) = ctx.response_body_filter(body.as_ref(), end_of_stream) {
            *body = Some(compressed);
        }
        Ok(())
    }

    fn response_done_filter(&mut self) -> pingora::Result<Option<Bytes>> {
        // Whatever the encoder still holds once the response is complete.
        Ok(self
            .ctx
            .as_mut()
            .filter(|c| c.is_enabled())
            .and_then(|c| c.response_body_filter(None, true)))
    }
}
