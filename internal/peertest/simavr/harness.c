/*
 * harness runs a real optiboot build on simavr's ATmega328P with UART0 on a
 * pseudo-terminal, for unbrick's real-peer tests (internal/peertest).
 *
 *   harness [-m MCU] BOOT.hex      (MCU: atmega328p, the default, or atmega2560)
 *
 * It loads the bootloader hex at its own addresses (optiboot links at
 * 0x7E00), starts the CPU there with MCUSR = EXTRF (an external reset: the
 * only cause that makes optiboot listen; optiboot.c, "Adaboot no-wait mod"),
 * and whenever the CPU reaches address 0 (optiboot's appStart after its
 * watchdog ran out, or after LEAVE_PROGMODE) it resets the part the same way,
 * so optiboot listens again, as a board whose host pulses reset would.
 *
 * simavr runs as fast as it can; this harness holds it to real time (16 MHz
 * of simulated cycles per wall-clock second), so that optiboot's watchdog
 * and its start-up LED flashes take the time they take on a board.
 *
 * It prints "uart0: /dev/pts/N" once the pseudo-terminal is there, and
 * "app start N" at each jump to the application. SIGUSR1 is its reset
 * line: the part is reset (EXTRF) and prints "reset N". It stops on SIGTERM or
 * SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <simavr/sim_avr.h>
#include <simavr/sim_hex.h>
#include <simavr/avr_ioport.h>
#include <simavr/avr_uart.h>
#include <simavr/parts/uart_pty.h>

#define MCUSR_ADDR 0x54 /* ATmega328P datasheet, register summary: MCUSR at data address 0x54 */
#define EXTRF 0x02

static volatile sig_atomic_t stop, pulse;

static void on_signal(int sig) { (void)sig; stop = 1; }
static void on_usr1(int sig) { (void)sig; pulse = 1; }

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void external_reset(avr_t *avr, uint32_t base) {
	avr_reset(avr);
	avr->pc = base;
	avr->data[MCUSR_ADDR] = EXTRF;
}

int main(int argc, char **argv) {
	const char *mcu = "atmega328p";
	if (argc == 4 && strcmp(argv[1], "-m") == 0) {
		mcu = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: %s [-m MCU] BOOT.hex\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, on_usr1);

	ihex_chunk_p chunks = NULL;
	int n = read_ihex_chunks(argv[1], &chunks);
	if (n <= 0) {
		fprintf(stderr, "harness: %s: no data records\n", argv[1]);
		return 1;
	}
	avr_t *avr = avr_make_mcu_by_name(mcu);
	if (!avr) {
		fprintf(stderr, "harness: simavr has no %s\n", mcu);
		return 1;
	}
	avr_init(avr);
	avr->frequency = 16000000;
	uint32_t base = 0xFFFFFFFF;
	for (int i = 0; i < n; i++) {
		if (chunks[i].baseaddr + chunks[i].size > avr->flashend + 1) {
			fprintf(stderr, "harness: %s: data at 0x%X-0x%X runs past the %s's %u KiB of flash (0x%X): "
				"avrdude refuses such a file and a chip's program counter would wrap to 0x0000\n",
				argv[1], chunks[i].baseaddr, chunks[i].baseaddr + chunks[i].size - 1, mcu,
				(avr->flashend + 1) / 1024, avr->flashend + 1);
			return 1;
		}
		memcpy(avr->flash + chunks[i].baseaddr, chunks[i].data, chunks[i].size);
		if (chunks[i].baseaddr < base)
			base = chunks[i].baseaddr;
	}
	free_ihex_chunks(chunks);
	avr->reset_pc = base;
	avr->codeend = avr->flashend;

	/*
	 * simavr's UART makes a firmware that polls an empty receiver sleep in
	 * real time without advancing the simulated clock much, so optiboot's
	 * watchdog would never run out while it waits. Poll at full speed; the
	 * loop below holds the clock to real time.
	 */
	uint32_t flags = 0;
	avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
	flags &= ~AVR_UART_FLAG_POLL_SLEEP;
	avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);

	uart_pty_t pty;
	memset(&pty, 0, sizeof pty);
	uart_pty_init(avr, &pty);
	uart_pty_connect(&pty, '0');
	external_reset(avr, base);
	printf("uart0: %s\n", pty.port[0].slavename);
	fflush(stdout);


	double t0 = now();
	avr_cycle_count_t c0 = avr->cycle;
	unsigned long apps = 0, resets = 0;
	unsigned long steps = 0;
	while (!stop) {
		int state = avr_run(avr);
		if (state == cpu_Done || state == cpu_Crashed) {
			fprintf(stderr, "harness: the CPU stopped (state %d) at pc 0x%04X; resetting\n", state, avr->pc);
			external_reset(avr, base);
			t0 = now();
			c0 = avr->cycle;
		}
		if (pulse) {
			pulse = 0;
			resets++;
			printf("reset %lu\n", resets);
			fflush(stdout);
			external_reset(avr, base);
		}
		if (avr->pc == 0) {
			apps++;
			printf("app start %lu\n", apps);
			fflush(stdout);
			external_reset(avr, base);
		}
		if (++steps % 4096 == 0) {
			/* Hold the simulation to real time. */
			double sim = (double)(avr->cycle - c0) / avr->frequency;
			double ahead = sim - (now() - t0);
			if (ahead > 0.002) {
				struct timespec ts = {0, (long)(ahead * 1e9)};
				nanosleep(&ts, NULL);
			} else if (ahead < -0.5) {
				/* Far behind (a loaded machine): do not race to catch up. */
				t0 = now();
				c0 = avr->cycle;
			}
		}
	}
	/* uart_pty_stop joins a thread that may sit in select() for ever: the
	 * process exit closes the pseudo-terminal anyway. */
	return 0;
}
