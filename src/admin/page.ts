/** The live status page (GET /): placeholder until the page lands. */
export const STATUS_PAGE = '<!doctype html><title>bridge</title><p>see /status</p>\n'
