// shim.mjs runs Espressif's esptool-js (the browser flasher, from npm) under
// node against a serial device on a Linux pseudo-terminal, for unbrick's
// peer tests (internal/peertest.EsptoolJS). esptool-js expects a Web Serial
// port; PtyPort gives it one over the pty:
//
//   open({baudRate})   sets the pty's rate with stty (the device model reads
//                      it from the host's termios) and opens the streams
//   close()            closes them; esptool-js reopens the port after a
//                      failed chip detection
//   readable/writable  WHATWG streams over the tty, in raw mode
//   setSignals()       a pty has no modem lines: accepted, reaches nothing
//   setBaudRate(b)     in-place rate change, which esptool-js's Transport
//                      prefers to closing and reopening the port
//   getInfo()          no USB vendor or product ID: a plain UART
//
// Usage:
//   node shim.mjs --esptool DIR --port /dev/pts/N [--baud 921600] [--no-stub]
//                 [--write 0x1000=file.bin ...] [--compress=false]
//                 [--read 0x1000=4096]
//
// It connects without a reset (the model is started in its bootloader),
// runs esptool-js's main() (detect the chip, read its description and MAC,
// upload and start the flasher stub, change the rate, read the flash ID),
// writes each file with an MD5 check, reads what --read asks, and prints
// one line on stdout, "RESULT " and JSON: {"chip", "mac", "flashId", "written": [...],
// "read": {"addr", "hex"}}. Everything esptool-js logs goes to stderr. Any
// failure exits 1 with the error on stderr.
import fs from "node:fs";
import tty from "node:tty";
import path from "node:path";
import crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
  const a = { baud: 115200, stub: true, write: [], read: null, compress: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`shim: ${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case "--esptool": a.esptool = next(); break;
      case "--port": a.port = next(); break;
      case "--baud": a.baud = Number(next()); break;
      case "--no-stub": a.stub = false; break;
      case "--compress=false": a.compress = false; break;
      case "--write": {
        const [addr, file] = next().split("=");
        a.write.push({ address: Number(addr), file });
        break;
      }
      case "--read": {
        const [addr, len] = next().split("=");
        a.read = { address: Number(addr), length: Number(len) };
        break;
      }
      default:
        throw new Error(`shim: unknown argument ${arg}`);
    }
  }
  if (!a.esptool || !a.port) throw new Error("shim: --esptool and --port are required");
  return a;
}

function stty(port, baud) {
  execFileSync("stty", ["-F", port, "raw", "-echo", String(baud)]);
}

// PtyPort is a Web-Serial-like SerialPort over a pseudo-terminal.
class PtyPort {
  constructor(file) {
    this.file = file;
    this.readable = null;
    this.writable = null;
  }

  getInfo() {
    return {};
  }

  async open({ baudRate }) {
    if (this.readable) throw new Error("PtyPort: already open");
    stty(this.file, baudRate);
    this.rfd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    this.wfd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    const rs = new tty.ReadStream(this.rfd);
    rs.setRawMode(true);
    this.rs = rs;
    this.readable = new ReadableStream({
      start(controller) {
        rs.on("data", (d) => controller.enqueue(new Uint8Array(d)));
        rs.on("close", () => {
          try {
            controller.close();
          } catch {
            // already closed or cancelled
          }
        });
        rs.on("error", (e) => controller.error(e));
      },
      cancel() {
        rs.destroy();
      },
    });
    const wfd = this.wfd;
    this.writable = new WritableStream({
      write(chunk) {
        return new Promise((resolve, reject) => {
          const buf = Buffer.from(chunk);
          const more = (off) => {
            if (off >= buf.length) return resolve();
            fs.write(wfd, buf, off, buf.length - off, null, (err, n) => (err ? reject(err) : more(off + n)));
          };
          more(0);
        });
      },
    });
  }

  async setSignals() {
    // No modem lines on a pty: DTR and RTS reach nothing.
  }

  async setBaudRate(baud) {
    stty(this.file, baud);
  }

  async close() {
    if (this.rs && !this.rs.destroyed) this.rs.destroy();
    if (this.wfd !== undefined) {
      try {
        fs.closeSync(this.wfd);
      } catch {
        // closed already
      }
    }
    this.rs = undefined;
    this.wfd = undefined;
    this.readable = null;
    this.writable = null;
  }
}

const log = (s) => process.stderr.write(s);
// esptool-js traces with console.log: keep stdout for the result.
console.log = (...args) => log(args.join(" ") + "\n");
const terminal = {
  clean() {},
  writeLine(s) {
    log(s + "\n");
  },
  write(s) {
    log(s);
  },
};

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const lib = path.join(a.esptool, "node_modules", "esptool-js", "lib", "index.js");
  const { ESPLoader, Transport } = await import(pathToFileURL(lib).href);
  const port = new PtyPort(a.port);
  const transport = new Transport(port, false);
  const loader = new ESPLoader({ transport, baudrate: a.baud, romBaudrate: 115200, terminal, debugLogging: !!process.env.ESPTOOLJS_DEBUG });
  const out = { written: [] };
  if (a.stub) {
    out.chip = await loader.main("no_reset");
  } else {
    // The ROM alone: detect, then the rest by hand (main() always loads the stub).
    await loader.detectChip("no_reset");
    out.chip = await loader.chip.getChipDescription(loader);
    if (a.baud !== 115200) await loader.changeBaud();
  }
  out.mac = await loader.chip.readMac(loader);
  out.flashId = await loader.readFlashId();
  out.stub = loader.IS_STUB;
  if (a.write.length > 0) {
    const fileArray = a.write.map((w) => ({ address: w.address, data: new Uint8Array(fs.readFileSync(w.file)) }));
    await loader.writeFlash({
      fileArray,
      flashMode: "keep",
      flashFreq: "keep",
      flashSize: "keep",
      eraseAll: false,
      compress: a.compress,
      calculateMD5Hash: (image) => crypto.createHash("md5").update(image).digest("hex"),
    });
    for (const f of fileArray) out.written.push({ address: f.address, length: f.data.length });
  }
  if (a.read) {
    const data = await loader.readFlash(a.read.address, a.read.length);
    out.read = { address: a.read.address, hex: Buffer.from(data).toString("hex") };
  }
  // Writes to a pipe are asynchronous: wait for this one before exiting.
  await new Promise((resolve) => process.stdout.write("RESULT " + JSON.stringify(out) + "\n", resolve));
  await transport.disconnect();
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`shim: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);
