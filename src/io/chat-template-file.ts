// Chat templates from files: a Jinja file, or the chat_template of a model folder's
// tokenizer_config.json (the Node side of chat/template.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { corenetInstructTemplate, jinjaTemplate, templateFromTokenizerConfigObject, type ChatTemplate } from '../chat/template.js';
import { readJsonFile } from './json.js';

/** The chat_template of a tokenizer_config.json file, or undefined when it has none. */
export function templateFromTokenizerConfig(file: string): ChatTemplate | undefined {
  return templateFromTokenizerConfigObject(readJsonFile(file, 'tokenizer config'), file);
}

export interface ResolveTemplateOptions {
  /** A Jinja template file (--chat-template FILE); wins over everything else. */
  file?: string;
  /**
   * Adapter folders merged into the model. An adapter fine-tuned on a chat format carries its
   * template in its own tokenizer_config.json (as `tokenizer.save_pretrained` next to a PEFT
   * adapter leaves it, and as openelm's adapter checkpoints do), and that one wins over the base's.
   */
  adapterDirs?: readonly string[];
  /** A model folder whose tokenizer_config.json may carry a chat_template. */
  modelDir?: string;
}

/** The chat_template of `dir`/tokenizer_config.json, if the folder has that file and it has one. */
function folderTemplate(dir: string): ChatTemplate | undefined {
  const f = path.join(dir, 'tokenizer_config.json');
  return fs.existsSync(f) ? templateFromTokenizerConfig(f) : undefined;
}

/** The template to use: an explicit file, else an adapter's, else the model folder's, else CoreNet's instruct format. */
export function resolveChatTemplate(opts: ResolveTemplateOptions = {}): ChatTemplate {
  if (opts.file !== undefined) {
    if (!fs.existsSync(opts.file) || !fs.statSync(opts.file).isFile()) throw new OpenELMError('usage', `chat template file ${opts.file} does not exist`);
    const text = fs.readFileSync(opts.file, 'utf8');
    // A tokenizer_config.json given as the template file is accepted too.
    if (opts.file.endsWith('.json')) {
      const t = templateFromTokenizerConfig(opts.file);
      if (!t) throw new OpenELMError('template', `${opts.file} has no "chat_template"`);
      return t;
    }
    return jinjaTemplate(text, { source: opts.file });
  }
  const fromAdapters = (opts.adapterDirs ?? []).map(folderTemplate).filter((t): t is ChatTemplate => t !== undefined);
  const other = fromAdapters.find((t) => t.text !== fromAdapters[0].text);
  if (other) {
    throw new OpenELMError('usage', `the adapters carry different chat templates (${fromAdapters[0].source} and ${other.source}); choose one with --chat-template FILE`);
  }
  if (fromAdapters.length) return fromAdapters[0];
  return (opts.modelDir !== undefined ? folderTemplate(opts.modelDir) : undefined) ?? corenetInstructTemplate();
}
