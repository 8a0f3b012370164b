//! `dfns-operator verify` (owned by the client work; placeholder signature only).
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

pub async fn run(_args: VerifyArgs) -> i32 {
    eprintln!("verify is not implemented yet");
    2
}
