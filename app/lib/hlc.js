// @ts-check
/**
 * Hybrid logical clocks, exactly as sync/hlc.py: `<wall ms, 15 digits>.<counter, 5
 * digits>.<node>`; fixed width, so comparing the strings compares the clocks.
 * @module
 */

/** @typedef {{wall: number, counter: number, node: string}} HLC */

const FORMAT = /^([0-9]{15})\.([0-9]{5})\.(.{1,64})$/;
const MAX_COUNTER = 99_999;

/** @param {HLC} c @returns {string} */
export function format(c) {
  return `${String(c.wall).padStart(15, "0")}.${String(c.counter).padStart(5, "0")}.${c.node}`;
}

/** @param {string} text @returns {HLC} */
export function parse(text) {
  const m = FORMAT.exec(text);
  if (!m) throw new Error(`not a hybrid logical clock value: ${JSON.stringify(text)}`);
  return { wall: Number(m[1]), counter: Number(m[2]), node: m[3] };
}

/** @param {number} wall @param {number} counter @param {string} node @returns {HLC} */
function make(wall, counter, node) {
  return counter > MAX_COUNTER ? { wall: wall + 1, counter: 0, node } : { wall, counter, node };
}

/**
 * The clock's next value for a local event (an edit).
 * @param {HLC} last @param {number} nowMs @param {string} node @returns {HLC}
 */
export function tick(last, nowMs, node) {
  if (nowMs > last.wall) return { wall: nowMs, counter: 0, node };
  return make(last.wall, last.counter + 1, node);
}

/**
 * Merge a remote clock (the server's `hlc` of an answer) into the local one. A tablet
 * trusts the server's clock however far it is from its own (sync/client.py passes a
 * huge max skew too).
 * @param {HLC} last @param {HLC} remote @param {number} nowMs @param {string} node
 * @returns {HLC}
 */
export function receive(last, remote, nowMs, node) {
  const wall = Math.max(last.wall, remote.wall, nowMs);
  let counter;
  if (wall === last.wall && wall === remote.wall) counter = Math.max(last.counter, remote.counter) + 1;
  else if (wall === last.wall) counter = last.counter + 1;
  else if (wall === remote.wall) counter = remote.counter + 1;
  else counter = 0;
  return make(wall, counter, node);
}
