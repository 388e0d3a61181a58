package ymodem

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Send sends files as one YMODEM batch over p: for each file block 0 with
// its name and exact size, the data in 1 KiB blocks (the last one padded
// with 0x1A), EOT; then the empty block 0 that ends the batch. It waits up
// to Options.StartTimeout for the receiver's first 'C'. On a fatal error it
// cancels the transfer with CANs, unless the receiver cancelled it.
func Send(ctx context.Context, p bootloader.Port, files []File, o Options) error {
	s := &sender{c: bootloader.NewConn(p), o: o, ymodem: true}
	for _, f := range files {
		s.total += int64(len(f.Data))
	}
	return s.finish(s.batch(ctx, files))
}

// SendXMODEM sends data with XMODEM: CRC-16 blocks if the receiver starts
// with 'C', 8-bit checksums if it starts with NAK. The receiver gets the
// data padded with 0x1A to a whole block.
func SendXMODEM(ctx context.Context, p bootloader.Port, data []byte, o Options) error {
	s := &sender{c: bootloader.NewConn(p), o: o, total: int64(len(data))}
	err := s.waitStart(ctx)
	if err == nil {
		err = s.file(ctx, data)
	}
	return s.finish(err)
}

type sender struct {
	c           *bootloader.Conn
	o           Options
	ymodem      bool
	crc         bool
	done, total int64
	ignoreC     bool // a 'C' may still come for the first data block: ignore it once
}

func (s *sender) finish(err error) error {
	if err != nil && !errors.Is(err, ErrCancelled) {
		_ = s.c.Write(cancelSeq)
	}
	return err
}

func (s *sender) batch(ctx context.Context, files []File) error {
	if err := s.waitStart(ctx); err != nil {
		return err
	}
	for i, f := range files {
		hdr, err := header(f)
		if err != nil {
			return err
		}
		if i > 0 {
			if err := s.waitC(ctx, "the receiver's 'C' for the next file"); err != nil {
				return err
			}
		}
		size := 128
		if len(hdr) > 128 {
			size = 1024
		}
		if err := s.block(ctx, appendBlock(nil, 0, hdr, size, 0, s.crc), 0, "send block 0 of "+f.Name); err != nil {
			return err
		}
		if err := s.waitDataStart(ctx); err != nil {
			return err
		}
		if err := s.file(ctx, f.Data); err != nil {
			return err
		}
	}
	if err := s.waitC(ctx, "the receiver's 'C' for the end of the batch"); err != nil {
		return err
	}
	return s.block(ctx, appendBlock(nil, 0, nil, 128, 0, s.crc), 0, "send the end of batch")
}

// waitStart waits for the receiver's first 'C' (or, for XMODEM, NAK), skips
// anything else, then drops whatever else the receiver had already queued
// (repeated 'C's from before the sender started).
func (s *sender) waitStart(ctx context.Context) error {
	end := time.Now().Add(s.o.startTimeout())
	var prev byte
	for {
		b, err := s.c.Byte(ctx, time.Until(end), "the receiver's 'C' to start")
		if err != nil {
			return err
		}
		switch {
		case b == CRCC:
			s.crc = true
		case b == NAK && !s.ymodem:
			s.crc = false
		case b == CAN && prev == CAN:
			return &ProtocolError{Op: "wait for the receiver to start", Err: ErrCancelled}
		default:
			prev = b
			continue
		}
		return s.drain(ctx)
	}
}

// drain drops bytes already waiting, without waiting for more than a moment.
func (s *sender) drain(ctx context.Context) error {
	var buf [64]byte
	var prev byte
	for range 16 {
		n, err := s.c.ReadSome(ctx, buf[:], time.Millisecond, "queued bytes")
		if err != nil {
			if isTimeout(err) {
				return nil
			}
			return err
		}
		for _, b := range buf[:n] {
			if b == CAN && prev == CAN {
				return &ProtocolError{Op: "start", Err: ErrCancelled}
			}
			prev = b
		}
	}
	return nil
}

// waitC waits for a 'C', skipping ACKs and noise (U-Boot answers EOT with
// ACK ACK C).
func (s *sender) waitC(ctx context.Context, op string) error {
	end := time.Now().Add(s.o.timeout())
	var prev byte
	for {
		b, err := s.c.Byte(ctx, time.Until(end), op)
		if err != nil {
			return err
		}
		switch {
		case b == CRCC:
			return nil
		case b == CAN && prev == CAN:
			return &ProtocolError{Op: op, Err: ErrCancelled}
		}
		prev = b
	}
}

// waitDataStart waits up to DataStartWait for the 'C' that follows the ACK
// of block 0. When none comes, block 1 goes anyway and a late 'C' is
// ignored once.
func (s *sender) waitDataStart(ctx context.Context) error {
	s.ignoreC = true
	wait := s.o.dataStartWait()
	if wait < 0 {
		return nil
	}
	end := time.Now().Add(wait)
	var prev byte
	for {
		b, err := s.c.Byte(ctx, time.Until(end), "the receiver's 'C' after block 0")
		if err != nil {
			if isTimeout(err) {
				return nil
			}
			return err
		}
		switch {
		case b == CRCC:
			s.ignoreC = false
			return nil
		case b == CAN && prev == CAN:
			return &ProtocolError{Op: "wait for the data to start", Err: ErrCancelled}
		}
		prev = b
	}
}

// file sends data in blocks numbered from 1, then EOT.
func (s *sender) file(ctx context.Context, data []byte) error {
	bs := s.o.BlockSize
	if bs != 128 {
		bs = 1024
	}
	buf := make([]byte, 0, 1029)
	n := byte(1)
	for off := 0; off < len(data); {
		size := bs
		if len(data)-off <= 128 {
			size = 128
		}
		end := min(off+size, len(data))
		buf = appendBlock(buf[:0], n, data[off:end], size, Pad, s.crc)
		if err := s.block(ctx, buf, n, fmt.Sprintf("send block %d (byte %d)", n, off)); err != nil {
			return err
		}
		s.ignoreC = false
		s.done += int64(end - off)
		s.o.progress(s.done, s.total)
		off = end
		n++
	}
	return s.eot(ctx)
}

// block sends one framed block until the receiver ACKs it.
func (s *sender) block(ctx context.Context, b []byte, n byte, op string) error {
	for try := 0; ; try++ {
		if try > s.o.retries() {
			return &ProtocolError{Op: op, Err: ErrRetries, Detail: fmt.Sprintf("no ACK after %d tries", try)}
		}
		if err := s.c.Write(b); err != nil {
			return err
		}
		ok, err := s.answer(ctx, op, n)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
}

// answer reads the receiver's answer to a block or EOT: true for ACK, false
// for a NAK, a 'C' or a timeout (send again).
func (s *sender) answer(ctx context.Context, op string, n byte) (bool, error) {
	end := time.Now().Add(s.o.timeout())
	var prev byte
	for {
		b, err := s.c.Byte(ctx, time.Until(end), "ACK after "+op)
		if err != nil {
			if isTimeout(err) {
				return false, nil
			}
			return false, err
		}
		switch {
		case b == ACK:
			return true, nil
		case b == NAK:
			return false, nil
		case b == CRCC:
			if n == 1 && s.ignoreC {
				s.ignoreC = false
				continue
			}
			return false, nil
		case b == CAN && prev == CAN:
			return false, &ProtocolError{Op: op, Err: ErrCancelled}
		}
		prev = b
	}
}

// eot ends a file, repeating EOT for receivers that NAK the first one.
func (s *sender) eot(ctx context.Context) error {
	for try := 0; ; try++ {
		if try > s.o.retries() {
			return &ProtocolError{Op: "send EOT", Err: ErrRetries, Detail: fmt.Sprintf("no ACK after %d EOTs", try)}
		}
		if err := s.c.Write([]byte{EOT}); err != nil {
			return err
		}
		ok, err := s.answer(ctx, "EOT", 0)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
}
