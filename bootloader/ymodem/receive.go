package ymodem

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Receive receives one YMODEM batch over p and returns its files, each
// trimmed to the size its block 0 gave. It sends 'C' every Options.Interval
// until the first block arrives, for up to Options.StartTimeout. On a fatal
// error it cancels the transfer with CANs (unless the sender cancelled it)
// and returns the files completed so far with the error.
func Receive(ctx context.Context, p bootloader.Port, o Options) ([]File, error) {
	r := &receiver{c: bootloader.NewConn(p), o: o, crc: true, ymodem: true}
	files, err := r.batch(ctx)
	return files, r.finish(err)
}

// ReceiveXMODEM receives one file with XMODEM (CRC-16, or the 8-bit
// checksum with Options.Checksum) and returns it as sent: padded to a whole
// block, since XMODEM does not carry the size.
func ReceiveXMODEM(ctx context.Context, p bootloader.Port, o Options) ([]byte, error) {
	r := &receiver{c: bootloader.NewConn(p), o: o, crc: !o.Checksum}
	data, err := r.data(ctx, -1, r.o.startTimeout())
	return data, r.finish(err)
}

type receiver struct {
	c      *bootloader.Conn
	o      Options
	crc    bool
	ymodem bool
	buf    [1024]byte
}

func (r *receiver) finish(err error) error {
	if err != nil && !errors.Is(err, ErrCancelled) && !errors.Is(err, context.Canceled) {
		_ = r.c.Write(cancelSeq)
	}
	return err
}

func (r *receiver) startChar() byte {
	if r.crc {
		return CRCC
	}
	return NAK
}

func (r *receiver) batch(ctx context.Context) ([]File, error) {
	var files []File
	wait := r.o.startTimeout()
	for {
		f, ok, err := r.header(ctx, wait)
		if err != nil || !ok {
			return files, err
		}
		data, err := r.data(ctx, f.Size, r.o.timeout())
		if err != nil {
			return files, err
		}
		if f.Size >= 0 && int64(len(data)) > f.Size {
			data = data[:f.Size]
		}
		f.Data = data
		files = append(files, f)
		wait = r.o.timeout()
	}
}

// event is what getBlock found.
type event int

const (
	evBlock   event = iota // a well-formed block
	evEOT                  // end of file
	evCancel               // CAN CAN
	evTimeout              // nothing within the wait
	evBad                  // a block with bad framing or check
)

// getBlock waits up to wait for a block, skipping noise. It returns the
// block number and its data, which stays valid until the next call.
func (r *receiver) getBlock(ctx context.Context, wait time.Duration, op string) (event, byte, []byte, error) {
	end := time.Now().Add(wait)
	var prev byte
	for {
		b, err := r.c.Byte(ctx, time.Until(end), op)
		if err != nil {
			if isTimeout(err) {
				return evTimeout, 0, nil, nil
			}
			return 0, 0, nil, err
		}
		size := 0
		switch {
		case b == SOH:
			size = 128
		case b == STX:
			size = 1024
		case b == EOT:
			return evEOT, 0, nil, nil
		case b == CAN && prev == CAN:
			return evCancel, 0, nil, nil
		}
		prev = b
		if size == 0 {
			continue
		}
		check := 1
		if r.crc {
			check = 2
		}
		blk := r.buf[:0]
		var head [2]byte
		var tail [2]byte
		if err := r.readGap(ctx, head[:], op); err != nil {
			return r.gapErr(err)
		}
		blk = blk[:size]
		if err := r.readGap(ctx, blk, op); err != nil {
			return r.gapErr(err)
		}
		if err := r.readGap(ctx, tail[:check], op); err != nil {
			return r.gapErr(err)
		}
		if head[0] != ^head[1] {
			return evBad, 0, nil, nil
		}
		if r.crc {
			if CRC16(blk) != uint16(tail[0])<<8|uint16(tail[1]) {
				return evBad, 0, nil, nil
			}
		} else if Checksum(blk) != tail[0] {
			return evBad, 0, nil, nil
		}
		return evBlock, head[0], blk, nil
	}
}

func (r *receiver) gapErr(err error) (event, byte, []byte, error) {
	if isTimeout(err) {
		return evBad, 0, nil, nil
	}
	return 0, 0, nil, err
}

// readGap fills b, allowing CharTimeout between bytes.
func (r *receiver) readGap(ctx context.Context, b []byte, op string) error {
	for n := 0; n < len(b); {
		m, err := r.c.ReadSome(ctx, b[n:], r.o.charTimeout(), op)
		if err != nil {
			return err
		}
		n += m
	}
	return nil
}

// purge drops the rest of a broken block: whatever arrives until the line
// has been quiet for a moment.
func (r *receiver) purge(ctx context.Context) error {
	quiet := min(r.o.charTimeout(), 100*time.Millisecond)
	_, err := r.c.Discard(ctx, quiet, r.o.timeout())
	return err
}

func (r *receiver) send(b ...byte) error { return r.c.Write(b) }

// header receives a YMODEM block 0, sending 'C' every Interval for up to
// wait. ok is false at the end of the batch.
func (r *receiver) header(ctx context.Context, wait time.Duration) (File, bool, error) {
	end := time.Now().Add(wait)
	const op = "receive block 0"
	errs := 0
	for {
		if err := r.send(CRCC); err != nil {
			return File{}, false, err
		}
		left := time.Until(end)
		if left <= 0 {
			return File{}, false, &bootloader.TimeoutError{Op: "the sender's block 0", After: wait}
		}
		ev, n, blk, err := r.getBlock(ctx, min(r.o.interval(), left), op)
		if err != nil {
			return File{}, false, err
		}
		switch ev {
		case evTimeout:
			continue
		case evCancel:
			return File{}, false, &ProtocolError{Op: op, Err: ErrCancelled}
		case evEOT:
			// The sender did not see our ACK of its last EOT.
			if err := r.send(ACK); err != nil {
				return File{}, false, err
			}
			continue
		case evBad:
			if errs++; errs > r.o.retries() {
				return File{}, false, &ProtocolError{Op: op, Err: ErrRetries, Detail: "bad blocks only"}
			}
			if err := r.purge(ctx); err != nil {
				return File{}, false, err
			}
			continue
		}
		if n != 0 {
			return File{}, false, &ProtocolError{Op: op, Err: ErrSequence, Detail: fmt.Sprintf("got block %d before block 0: is the sender using XMODEM?", n)}
		}
		f, ok, err := parseHeader(blk)
		if err != nil {
			return File{}, false, err
		}
		if ok && f.Size > r.o.maxSize() {
			return File{}, false, &ProtocolError{Op: op, Err: ErrTooLarge, Detail: fmt.Sprintf("%s is %d bytes, the limit is %d", f.Name, f.Size, r.o.maxSize())}
		}
		if err := r.send(ACK); err != nil {
			return File{}, false, err
		}
		return f, ok, nil
	}
}

// data receives the blocks of one file, from block 1 to EOT. size is the
// size from block 0 (-1: unknown, XMODEM). Until the first block arrives it
// sends the start character every Interval for up to first.
func (r *receiver) data(ctx context.Context, size int64, first time.Duration) ([]byte, error) {
	var data []byte
	expect := byte(1)
	got := false // a data block has arrived
	eots, errs := 0, 0
	end := time.Now().Add(first)
	reply := []byte{r.startChar()}
	for {
		if err := r.c.Write(reply); err != nil {
			return data, err
		}
		wait := r.o.timeout()
		if !got {
			left := time.Until(end)
			if left <= 0 {
				return data, &bootloader.TimeoutError{Op: "the sender's first block", After: first}
			}
			wait = min(r.o.interval(), left)
		}
		op := fmt.Sprintf("receive block %d", expect)
		ev, n, blk, err := r.getBlock(ctx, wait, op)
		if err != nil {
			return data, err
		}
		switch ev {
		case evCancel:
			return data, &ProtocolError{Op: op, Err: ErrCancelled}
		case evTimeout, evBad:
			reply = []byte{r.startChar()}
			if got {
				if errs++; errs > r.o.retries() {
					if ev == evTimeout {
						return data, &bootloader.TimeoutError{Op: op, After: wait}
					}
					return data, &ProtocolError{Op: op, Err: ErrRetries, Detail: "bad blocks only"}
				}
				reply = []byte{NAK}
			}
			if ev == evBad {
				if err := r.purge(ctx); err != nil {
					return data, err
				}
			}
			continue
		case evEOT:
			if r.o.NAKFirstEOT && eots == 0 {
				eots++
				reply = []byte{NAK}
				continue
			}
			return data, r.send(ACK)
		}
		switch {
		case n == expect:
			if size >= 0 {
				// Keep what block 0 announced; the rest is padding.
				keep := max(size-int64(len(data)), 0)
				data = append(data, blk[:min(int64(len(blk)), keep)]...)
			} else {
				if int64(len(data)+len(blk)) > r.o.maxSize() {
					return data, &ProtocolError{Op: op, Err: ErrTooLarge, Detail: fmt.Sprintf("more than %d bytes", r.o.maxSize())}
				}
				data = append(data, blk...)
			}
			got = true
			expect++
			errs, eots = 0, 0
			reply = []byte{ACK}
			r.o.progress(int64(len(data)), max(size, 0))
		case n == expect-1:
			// A repeat of the block before: our ACK was lost. Acknowledge it
			// again and drop it; a repeated block 0 also wants its 'C'.
			reply = []byte{ACK}
			if n == 0 && r.ymodem {
				reply = []byte{ACK, CRCC}
			}
		default:
			return data, &ProtocolError{Op: op, Err: ErrSequence, Detail: fmt.Sprintf("got block %d", n)}
		}
	}
}
