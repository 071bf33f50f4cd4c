//! `workers` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    let code = workers::cli::main(workers::cli::Cli::parse());
    tenant_config::runtime::flush_logs();
    std::process::exit(code);
}
