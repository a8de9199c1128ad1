// A stdio FILE that writes to a pipe without ever raising SIGPIPE: a write to
// a pipe whose reader is gone fails with EPIPE ("Broken pipe") whatever the
// process's SIGPIPE disposition is, so a library embedder keeps its own and
// the plua host keeps lua's default (a script printing into `| head` ends).
// Used for Popen's stdin, which a child may stop reading at any time.
#pragma once

#include <cstdio>

namespace plua::core {

// A FILE (opened for writing) over `fd`, which it takes over: fclose closes
// fd. Each write blocks SIGPIPE in the calling thread (SigpipeGuard) and
// writes everything or fails with errno set. nullptr (errno set) on failure,
// fd then left open.
std::FILE* open_pipe_writer(int fd) noexcept;

}  // namespace plua::core
