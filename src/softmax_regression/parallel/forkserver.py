"""Imported by the fork server `launch` forks the ranks from, as it starts (nothing else imports it): torch
and the launcher, once, and a tie to the stage. On Linux the server is killed when the stage dies, even by
SIGKILL, and each rank, tied to the server in turn, dies with it."""

from softmax_regression.parallel.launch import die_with_parent

die_with_parent()
