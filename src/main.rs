//! The `hotswap-node` binary: parse, run, and turn every error into its
//! message and exit code in one place.

use clap::Parser;
use hotswap_node::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    hotswap_node::timings::origin();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut json = false;
    let run = async {
        tokio::select! {
            ran = cli::run(cli, &mut json) => ran,
            () = hotswap_node::interrupt::quit_requested() => Ok(cli::exit::INTERRUPTED),
        }
    };
    let ran = runtime.block_on(async {
        let ran = run.await;
        hotswap_node::fault::hold("run_ended").await;
        ran
    });
    let code = match ran {
        Ok(code) => code,
        Err(e) => {
            let message = e.to_string();
            if json {
                let doc = serde_json::json!({"ok": false, "snapshot": null, "nodes": [], "error": message});
                println!("{doc}");
            }
            eprintln!("error: {message}");
            cli::exit::of_error(&e)
        }
    };
    // A second Ctrl-C that came as the run ended (say, as its build
    // stopped) still quits: its groups stopped, said, exit 130.
    let code = match hotswap_node::interrupt::quitting() {
        true => {
            runtime.block_on(hotswap_node::interrupt::quit_done());
            cli::exit::INTERRUPTED
        }
        false => code,
    };
    // Do not wait for lingering connection tasks.
    runtime.shutdown_background();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Warnings always; `-v` adds the distribution layer's debug lines,
/// `RUST_LOG` overrides both.
fn init_logging(cli: &Cli) {
    let verbose = match &cli.command {
        cli::Command::Deploy(args) => args.output.verbose,
        cli::Command::Watch(args) => args.output.verbose,
        _ => 0,
    };
    let default = match verbose {
        0 => "warn",
        1 => "hotswap_node=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}
