//! `platform` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    std::process::exit(platform::cli::main(platform::cli::Cli::parse()));
}
