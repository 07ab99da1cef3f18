/** @module Interface wsbox:websocket/log@0.1.2 **/
/**
 * Write one line to the host log.
 */
export function log(level: Level, message: string): void;
/**
 * Severity of a log line.
 * # Variants
 * 
 * ## `"trace"`
 * 
 * Very detailed tracing.
 * ## `"debug"`
 * 
 * Debugging detail.
 * ## `"info"`
 * 
 * Normal operation.
 * ## `"warn"`
 * 
 * Something unexpected but handled.
 * ## `"error"`
 * 
 * Something failed.
 */
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
