import type { Bus, BusListener } from './bus.js'
export interface RedisBusOptions { redis: unknown, channelPrefix: string, listener: BusListener, log: unknown }
export async function createRedisBus (_options: RedisBusOptions): Promise<Bus> {
  throw new Error('Redis bus: not implemented yet')
}
