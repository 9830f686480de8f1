// readline and history, plus accessors for C globals that Swift cannot touch directly.
#include <stdio.h>
#include <readline/readline.h>
#include <readline/history.h>
static inline int lathe_history_length(void) { return history_length; }
static inline int lathe_history_base(void) { return history_base; }
