// Client-side check of a command value against its type and range, before anything is sent
// (the gateway checks again and answers 422 with `field: "value"`).

/** The input to show for a command type: input type, step and the hint under it. */
export function inputFor(command) {
  const range = [command.command_min, command.command_max].some((v) => typeof v === 'number')
    ? ` between ${command.command_min ?? '−∞'} and ${command.command_max ?? '+∞'}`
    : '';
  switch (command.command_type) {
    case 'Int':
      return { kind: 'number', step: '1', hint: `a whole number${range}` };
    case 'Float':
      return { kind: 'number', step: 'any', hint: `a number${range}` };
    case 'Bool':
      return { kind: 'bool', hint: 'true or false' };
    default:
      return { kind: 'text', hint: 'text' };
  }
}

/** {value} with the typed JSON value, or {error} saying what is wrong. */
export function parseCommandValue(command, raw) {
  const text = String(raw ?? '').trim();
  const inRange = (n) => {
    if (typeof command.command_min === 'number' && n < command.command_min) return `must be at least ${command.command_min}`;
    if (typeof command.command_max === 'number' && n > command.command_max) return `must be at most ${command.command_max}`;
    return null;
  };
  switch (command.command_type) {
    case 'Int': {
      if (!/^[+-]?\d+$/.test(text)) return { error: 'must be a whole number' };
      const n = Number(text);
      if (!Number.isSafeInteger(n)) return { error: 'is too large' };
      const problem = inRange(n);
      return problem ? { error: problem } : { value: n };
    }
    case 'Float': {
      if (text === '' || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return { error: 'must be a number' };
      const n = Number(text);
      if (!Number.isFinite(n)) return { error: 'must be a finite number' };
      const problem = inRange(n);
      return problem ? { error: problem } : { value: n };
    }
    case 'Bool':
      if (text === 'true') return { value: true };
      if (text === 'false') return { value: false };
      return { error: 'must be true or false' };
    default:
      if (text === '') return { error: 'must not be empty' };
      return { value: String(raw) };
  }
}

/** A fresh idempotency key: 32 hex digits (crypto.randomUUID needs a secure context; this does not). */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
