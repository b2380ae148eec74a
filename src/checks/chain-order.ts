/** At most this many rules of one table and scope are searched for chains (subsets: 2^n). */
const SEARCHED = 12;

/**
 * Chains among `members` (rule indices), largest first, each ordered coarse → fine so that every
 * member covers every later one (`covers(a, b)`: a's key is a function of b's key), each member in
 * one chain at most. A chain needs two members or more; members in none are left out.
 */
export function chainOrder(members: number[], covers: (a: number, b: number) => boolean): number[][] {
  let left = members.slice(0, SEARCHED);
  const chains: number[][] = [];
  for (;;) {
    const chain = largestChain(left, covers);
    if (!chain) return chains;
    chains.push(chain);
    left = left.filter((m) => !chain.includes(m));
  }
}

function largestChain(members: number[], covers: (a: number, b: number) => boolean): number[] | null {
  let best: number[] | null = null;
  for (let mask = 1; mask < 1 << members.length; mask++) {
    const subset = members.filter((_, i) => mask & (1 << i));
    if (subset.length < 2 || (best && subset.length <= best.length)) continue;
    // Coarsest first: a member covers every later one, so it covers at least as many as they do.
    const rank = (m: number) => subset.filter((o) => o !== m && covers(m, o)).length;
    const ordered = [...subset].sort((a, b) => rank(b) - rank(a) || a - b);
    if (ordered.every((m, i) => ordered.slice(i + 1).every((later) => covers(m, later)))) best = ordered;
  }
  return best;
}
