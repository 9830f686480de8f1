// The REPL and commands.
