//! The `host` binary: parse the command line, set up logging, serve.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use wsbox::cli::{Cli, Command, LogFormat, ServeArgs};
use wsbox::runtime::Runtime;
use wsbox::server::Server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Arc::new(args.config());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let wasm = Arc::new(Runtime::new(config.clone())?);
        let guest = wasm.load(&args.app)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let local = listener
            .local_addr()
            .context("reading the listen address")?;
        tracing::info!(
            app = %args.app.display(),
            version = guest.version(),
            "listening on ws://{local}"
        );
        let server = Server::new(wasm, guest, config.clone());
        server.serve(listener).await.context("serving")
    })
}
