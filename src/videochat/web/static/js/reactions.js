// Emoji reactions under a chat message: a chip per emoji (pressed when it is yours,
// click to toggle), and a small picker of common ones for the message's tools.
// Emoji and names are text only.

export const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '🙏'];

/**
 * The reactions row of one message (chips only; empty when nobody reacted).
 * @param {{emoji: string, count: number, user_ids: string[]}[]} reactions
 * @param {string} selfId
 * @param {(emoji: string, add: boolean) => void} toggle
 */
export function reactionsRow(reactions, selfId, toggle) {
  const row = document.createElement('div');
  row.className = 'message-reactions';
  for (const { emoji, count, user_ids: userIds } of reactions) {
    const mine = userIds.includes(selfId);
    const chip = document.createElement('button');
    chip.type = 'button';
    chip.className = 'reaction-chip';
    chip.dataset.testid = 'message-reaction';
    chip.dataset.emoji = emoji;
    chip.setAttribute('aria-pressed', String(mine));
    chip.setAttribute('aria-label', `${emoji} ${count}${mine ? ', including you' : ''}`);
    chip.textContent = `${emoji} ${count}`;
    chip.addEventListener('click', () => toggle(emoji, !mine));
    row.append(chip);
  }
  return row;
}

/** The "add a reaction" button and its choices (shown with a message's tools). */
export function reactionPicker(reactions, selfId, toggle) {
  const details = document.createElement('details');
  details.className = 'reaction-picker';
  const summary = document.createElement('summary');
  summary.textContent = '☺+';
  summary.setAttribute('aria-label', 'Add a reaction');
  summary.dataset.testid = 'add-reaction';
  const choices = document.createElement('div');
  choices.className = 'reaction-choices';
  for (const emoji of QUICK_EMOJI) {
    const mine = reactions.some((r) => r.emoji === emoji && r.user_ids.includes(selfId));
    const option = document.createElement('button');
    option.type = 'button';
    option.textContent = emoji;
    option.setAttribute('aria-label', `React with ${emoji}`);
    option.addEventListener('click', () => {
      details.open = false;
      toggle(emoji, !mine);
    });
    choices.append(option);
  }
  details.append(summary, choices);
  return details;
}
