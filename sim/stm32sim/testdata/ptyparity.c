/*
 * ptyparity: an LD_PRELOAD shim for running stm32flash at 8E1 on a Linux
 * pseudo-terminal, for the project's interop tests only.
 *
 * The pty driver clears PARENB whatever a program asks (drivers/tty/pty.c,
 * pty_set_termios), and stm32flash reads its settings back and refuses a
 * port that did not keep them (serial_posix.c, serial_setup). INPCK
 * survives, and stm32flash sets it exactly when it sets PARENB; the model's
 * end of the pty reads the host's parity from it. This shim only makes
 * tcgetattr report PARENB where INPCK is set, as a real UART's driver
 * would have kept it: stm32flash then runs its real 8E1 code path, and
 * with -m 8n1 it clears INPCK and the model sees an 8N1 host.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <termios.h>

int tcgetattr(int fd, struct termios *t)
{
	static int (*real)(int, struct termios *);
	if (!real)
		real = (int (*)(int, struct termios *))dlsym(RTLD_NEXT, "tcgetattr");
	int rc = real(fd, t);
	if (rc == 0 && (t->c_iflag & INPCK))
		t->c_cflag |= PARENB;
	return rc;
}
