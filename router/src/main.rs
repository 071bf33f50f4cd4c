//! `router` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    std::process::exit(router::cli::main(router::cli::Cli::parse()));
}
