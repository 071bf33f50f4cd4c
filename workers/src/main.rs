//! `workers` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    std::process::exit(workers::cli::main(workers::cli::Cli::parse()));
}
