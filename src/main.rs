//! `helpdesk`: parses the command line, runs one command, and maps the
//! outcome to an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = helpdesk::cli::Cli::parse();
    if !matches!(cli.command, helpdesk::cli::Command::Run) {
        // `helpdesk rules explain x.eml | head` ends quietly, as other
        // command-line tools do, instead of panicking on the closed pipe.
        // The daemon keeps Rust's default (SIGPIPE ignored: its sockets
        // report errors instead).
        // SAFETY: called before any thread exists; SIG_DFL is a valid
        // disposition for SIGPIPE.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
