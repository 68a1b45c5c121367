// Section 13: starts the app (npm start).
// #region server
import { app } from './app.js'
// #endregion server

// #region listen
// PORT=0 picks a free port; the log says which
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
// #endregion listen
