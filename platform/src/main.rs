//! `platform` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    // One TLS provider for every connection (PostgreSQL, Redis, SMTP, Stripe), as in the router.
    tenant_config::db::tls::install_crypto_provider();
    let code = platform::cli::main(platform::cli::Cli::parse());
    tenant_config::runtime::flush_logs();
    std::process::exit(code);
}
