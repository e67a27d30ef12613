//! `helpdesk`: parses the command line, runs one command, and maps the
//! outcome to an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = helpdesk::cli::Cli::parse();
    helpdesk::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("helpdesk: cannot start the async runtime: {e}");
            return ExitCode::from(71);
        }
    };
    match runtime.block_on(helpdesk::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("helpdesk: {e:#}");
            ExitCode::FAILURE
        }
    }
}
