fn main() -> std::process::ExitCode {
    pgsnapdiff::main()
}
