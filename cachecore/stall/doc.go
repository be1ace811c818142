// Package stall gives up on a transfer that makes no progress: a Watch
// cancels the request (through the cancel function it is given) once its
// peer has sent nothing for a while, from the moment the request goes out
// through every read of the response's body.
//
// It owns only the timer. It must never read, buffer or retry anything
// itself: what to do after a stall is the caller's decision.
package stall
