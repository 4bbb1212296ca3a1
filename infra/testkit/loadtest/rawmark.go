package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// rawMarkConn is a minimal client of the one mark rpc written on HTTP/2
// frames (h2c, prior knowledge), the mark sweep's second client: it
// does what a unary gRPC call needs on the wire and nothing else, so that
// the client beside the backend on the shared cores costs as little as a
// client can. It is a measuring tool, not a transport: no TLS, deadlines,
// retries, reconnects or compression; a connection that fails fails every
// call in flight on it.
//
// One goroutine reads frames and completes calls; callers queue their
// requests, and whichever caller finds no writer at work writes the queue
// out, yielding once before flushing a small batch so that calls made at
// the same moment share a write (as gRPC-Go's writer does).
type rawMarkConn struct {
	nc net.Conn
	bw *bufio.Writer
	fr *http2.Framer

	mu      sync.Mutex
	cond    *sync.Cond // the send window grew, or the connection failed
	err     error      // the connection's failure, once failed
	writing bool
	queue   []*rawMarkCall
	streams map[uint32]*rawMarkCall
	nextID  uint32
	sendWin int64 // the connection's send window, in DATA bytes
	ctrl    []func() error

	// Written by the writer only.
	enc    *hpack.Encoder
	hbuf   bytes.Buffer
	fields []hpack.HeaderField

	recvUnacked uint32 // read by the reader only
}

// rawMarkCall is one call; a caller reuses its own for every call.
type rawMarkCall struct {
	frame  []byte // the gRPC message: 5-byte prefix + MarkRequest
	status string
	err    error
	done   chan struct{}
}

// rawRecvWindowUpdate is how many DATA bytes are taken before the
// connection's receive window is handed back.
const rawRecvWindowUpdate = 16 << 10

func dialRawMark(addr, apiKey string) (*rawMarkConn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raw mark client: %w", err)
	}
	c := &rawMarkConn{
		nc:      nc,
		bw:      bufio.NewWriterSize(nc, 32<<10),
		streams: make(map[uint32]*rawMarkCall),
		nextID:  1,
		sendWin: 65535, // the HTTP/2 initial window
	}
	c.cond = sync.NewCond(&c.mu)
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 32<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 16 << 10
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fields = []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: outboxmessagev1.PatchOutboxController_PatchOutboxMarkAsSentUseCase_FullMethodName},
		{Name: ":authority", Value: addr},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
	}
	if apiKey != "" {
		c.fields = append(c.fields, hpack.HeaderField{Name: "x-api-key", Value: apiKey, Sensitive: true})
	}
	_, err = c.bw.WriteString(http2.ClientPreface)
	if err == nil {
		err = c.fr.WriteSettings()
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("raw mark client: preface: %w", err)
	}
	go c.readLoop()
	return c, nil
}

// Close ends the connection; calls still in flight fail.
func (c *rawMarkConn) Close() error { return c.nc.Close() }

// newRawMarkCall is a call for one caller to reuse.
func newRawMarkCall() *rawMarkCall { return &rawMarkCall{done: make(chan struct{}, 1)} }

// Mark marks eventID SENT and waits for the answer: nil for grpc-status 0.
func (c *rawMarkConn) Mark(call *rawMarkCall, eventID string) error {
	if len(eventID) > 120 {
		return fmt.Errorf("raw mark client: event id of %d bytes", len(eventID))
	}
	c.mu.Lock()
	if c.err != nil {
		// Checked before the call is touched: a writer may still be
		// copying it out after the failure completed it.
		err := c.err
		c.mu.Unlock()
		return err
	}
	n := 2 + len(eventID) // the field's tag and length, then the id
	call.frame = append(call.frame[:0], 0, 0, 0, 0, byte(n), 0x0a, byte(len(eventID)))
	call.frame = append(call.frame, eventID...)
	call.status, call.err = "", nil
	c.queue = append(c.queue, call)
	if !c.writing {
		c.writing = true
		c.writeLocked()
	}
	c.mu.Unlock()

	<-call.done
	if call.err != nil {
		return call.err
	}
	if call.status != "0" {
		return fmt.Errorf("raw mark client: grpc-status %q", call.status)
	}
	return nil
}

// writeLocked writes the queue out, with c.mu held on entry and on return
// (released while writing), and hands the writing on when nothing is left.
func (c *rawMarkConn) writeLocked() {
	yielded := false
	for c.err == nil {
		if len(c.queue) == 0 && len(c.ctrl) == 0 {
			if !yielded && c.bw.Buffered() > 0 && c.bw.Buffered() < 1000 {
				yielded = true // let calls made at this moment join the write
				c.mu.Unlock()
				runtime.Gosched()
				c.mu.Lock()
				continue
			}
			if c.bw.Buffered() > 0 {
				c.flushLocked()
				continue
			}
			break
		}
		ctrl := c.ctrl
		c.ctrl = nil
		var batch []*rawMarkCall
		for _, call := range c.queue {
			if int64(len(call.frame)) > c.sendWin {
				break
			}
			c.sendWin -= int64(len(call.frame))
			batch = append(batch, call)
		}
		c.queue = c.queue[len(batch):]
		if len(batch) == 0 && len(ctrl) == 0 {
			// The server has not handed the send window back yet: what
			// is written must reach it first.
			if c.bw.Buffered() > 0 {
				c.flushLocked()
				continue
			}
			c.cond.Wait()
			continue
		}
		ids := make([]uint32, len(batch))
		for i, call := range batch {
			ids[i] = c.nextID
			c.streams[c.nextID] = call
			c.nextID += 2
		}
		c.mu.Unlock()
		err := c.writeFrames(ctrl, batch, ids)
		c.mu.Lock()
		if err != nil {
			c.failLocked(fmt.Errorf("raw mark client: write: %w", err))
		}
	}
	c.writing = false
}

// flushLocked sends what is buffered, with c.mu held on entry and on
// return (released while sending), and fails the connection on an error.
func (c *rawMarkConn) flushLocked() {
	c.mu.Unlock()
	err := c.bw.Flush()
	c.mu.Lock()
	if err != nil {
		c.failLocked(fmt.Errorf("raw mark client: write: %w", err))
	}
}

// writeFrames writes the control frames, then each call's HEADERS and
// DATA (the request, ending the stream), into the buffer.
func (c *rawMarkConn) writeFrames(ctrl []func() error, batch []*rawMarkCall, ids []uint32) error {
	for _, f := range ctrl {
		if err := f(); err != nil {
			return err
		}
	}
	for i, call := range batch {
		c.hbuf.Reset()
		for _, f := range c.fields {
			if err := c.enc.WriteField(f); err != nil {
				return err
			}
		}
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: ids[i], BlockFragment: c.hbuf.Bytes(), EndHeaders: true}); err != nil {
			return err
		}
		if err := c.fr.WriteData(ids[i], true, call.frame); err != nil {
			return err
		}
	}
	return nil
}

// control queues a control frame for the writer, and starts one when no
// one is writing: the reader never writes itself, so that it never stops
// reading while the server waits for it to.
func (c *rawMarkConn) control(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctrl = append(c.ctrl, f)
	c.cond.Broadcast() // a writer waiting for send window writes it now
	if !c.writing && c.err == nil {
		c.writing = true
		go func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.writeLocked()
		}()
	}
}

// failLocked fails the connection and every call in flight or queued.
func (c *rawMarkConn) failLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	for id, call := range c.streams {
		delete(c.streams, id)
		call.err = err
		call.done <- struct{}{}
	}
	for _, call := range c.queue {
		call.err = err
		call.done <- struct{}{}
	}
	c.queue = nil
	c.cond.Broadcast()
	_ = c.nc.Close()
}

// readLoop reads the server's frames until the connection fails.
func (c *rawMarkConn) readLoop() {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.fail(fmt.Errorf("raw mark client: read: %w", err))
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if v, ok := f.Value(http2.SettingInitialWindowSize); ok && v < 128 {
					c.fail(fmt.Errorf("raw mark client: the server's stream window of %d bytes is smaller than a request", v))
					return
				}
				c.control(c.fr.WriteSettingsAck)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				c.control(func() error { return c.fr.WritePing(true, data) })
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.mu.Lock()
				c.sendWin += int64(f.Increment)
				c.cond.Broadcast() // a writer waiting for it stays the writer
				c.mu.Unlock()
			}
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" && s != "200" {
				c.finish(f.StreamID, "", fmt.Errorf("raw mark client: HTTP status %s", s))
				continue
			}
			if f.StreamEnded() {
				status := ""
				for _, h := range f.Fields {
					if h.Name == "grpc-status" {
						status = h.Value
					}
				}
				c.finish(f.StreamID, status, nil)
			}
		case *http2.DataFrame:
			if n := f.Length; n > 0 {
				c.recvUnacked += n
				if c.recvUnacked >= rawRecvWindowUpdate {
					inc := c.recvUnacked
					c.recvUnacked = 0
					c.control(func() error { return c.fr.WriteWindowUpdate(0, inc) })
				}
			}
			if f.StreamEnded() {
				c.finish(f.StreamID, "", errors.New("raw mark client: the answer ended without trailers"))
			}
		case *http2.RSTStreamFrame:
			c.finish(f.StreamID, "", fmt.Errorf("raw mark client: stream reset: %v", f.ErrCode))
		case *http2.GoAwayFrame:
			c.fail(fmt.Errorf("raw mark client: GOAWAY %v", f.ErrCode))
			return
		}
	}
}

func (c *rawMarkConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(err)
}

// finish completes stream id's call.
func (c *rawMarkConn) finish(id uint32, status string, err error) {
	c.mu.Lock()
	call, ok := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	if !ok {
		return
	}
	call.status, call.err = status, err
	call.done <- struct{}{}
}
