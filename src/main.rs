fn main() -> std::process::ExitCode {
    distzero::cli::main()
}
