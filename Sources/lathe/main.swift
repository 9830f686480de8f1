// The lathe command.
