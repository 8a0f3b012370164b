//! Command-line interface of `dfns-operator`: `run`, `crds`, `verify`, `renew`.
use clap::{Parser, Subcommand};

mod error;
mod kubeconfig;
pub mod renew;
pub mod run;
pub mod verify;

pub use error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "dfns-operator",
    version,
    about = "Dfns API credentials as Kubernetes objects"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Run the controllers (what the Deployment runs).
    Run(run::RunArgs),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
    /// Check that a Dfns credential works: one authenticated read and one user-action signature.
    /// It calls whatever DFNS_API_URL names (your own command): `run`'s --allowed-api-hosts does
    /// not apply.
    Verify(verify::VerifyArgs),
    /// Ask the operator to renew a credential's token now (annotation dfns.io/renew), or with
    /// --key to rotate its signing key (dfns.io/rotate-key). Each call sets a new value, which
    /// the operator acts on once.
    Renew(renew::RenewArgs),
}

/// Runs the parsed command and returns the process exit code.
pub async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Crds => {
            print!("{}", crate::api::crds_yaml());
            0
        }
        Command::Run(args) => run::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Renew(args) => renew::run(args).await,
    }
}
