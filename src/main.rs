use clap::Parser;
use dfns_operator::cli::{Cli, dispatch};

#[tokio::main]
async fn main() {
    let code = dispatch(Cli::parse()).await;
    std::process::exit(code);
}
